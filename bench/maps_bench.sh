#!/usr/bin/env bash
# Benchmarks rsi buildings and rsi scene end to end against rsi's own pure-model rate
# (`rsi model check`, the same optimised TorchScript forward on the same tile size and batch, no I/O),
# measured in the same run. Reports medians and min-max of wall time, CPU time and peak RSS.
#
#   bench/maps_bench.sh [--smoke] [--reps N] [--sizes "2000 8000 16000"] [--scene-only]
#
# Images are generated on the fly under $RSI_BENCH_DIR (default /tmp/rsi-bench) from the real Vegas
# scene (buildings) and NAIP image (scene); nothing is written into the repository.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rsi="${RSI:-$root/build/cli/rsi}"
work="${RSI_BENCH_DIR:-/tmp/rsi-bench}"
reps=3
sizes="2000 8000 16000"
scene_scale=16  # 14944 x 11568, ~42,000 windows: ~30 s, so start-up (~1 s) weighs little
scene_only=0
smoke=0
check_batches=20
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; reps=1; sizes="600"; scene_scale=1; check_batches=2; shift ;;
    --reps) reps="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --scene-only) scene_only=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
mkdir -p "$work"
batch=1  # rsi's CPU default for this model (tiles needing >= 64 MB run one per batch); rsi runs without --batch
tile=512

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%s-%s", min, max}'; }

# One timed run: prints "wall cpu rss_mb" and leaves the JSON summary in $work/last.json
timed() {
  /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" "$@" > "$work/last.json"
  awk '{printf "%s %.2f %.0f\n", $1, $2 + $3, $4 / 1024}' "$work/time.txt"
}

echo "# rsi maps benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
if [ "$scene_only" = 0 ]; then
echo "## rsi buildings (tile $tile, batch $batch, default model) vs pure model"
echo
echo "Pure model s = tiles x the median batch time of \`rsi model check\` ($check_batches batches); in brackets with the mean"
echo "batch time. In-forward s: rsi's own time inside the model's forward calls (JSON model_seconds)."
echo
echo "| size | tiles | pure model s (mean) | rsi buildings wall s (min-max) | ratio (to mean) | in-forward s | CPU s | non-model CPU s/MP | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in $sizes; do
  image=$(/usr/bin/python3 "$root/bench/make_image.py" --outdir "$work" "$n" | tail -1)
  read -r rate mean_rate < <("$rsi" model check buildings --tile-size "$tile" --batch "$batch" --iterations "$check_batches" --no-eager --json -q |
         /usr/bin/python3 -c 'import json,sys; j = json.load(sys.stdin); print(j["tiles_per_second"], j["batch"] * 1000 / j["optimized_batch_ms_mean"])')
  walls=(); cpus=(); rss=(); fwds=(); tiles=0
  for r in $(seq "$reps"); do
    read -r wall cpu mb < <(timed "$rsi" buildings "$image" -o "$work/b_$n.tif" --tile-size "$tile" \
                                 --resample off --no-manifest --overwrite --json -q)
    tiles=$(/usr/bin/python3 -c 'import json; print(json.load(open("'"$work/last.json"'"))["tiles"])')
    # rsi runs with its own default batch; the pure model must be timed at the same one
    chosen=$(/usr/bin/python3 -c 'import json; print(json.load(open("'"$work/last.json"'"))["batch"])')
    [ "$chosen" = "$batch" ] || echo "WARNING: rsi chose batch $chosen, the pure model ran batch $batch" >&2
    walls+=("$wall"); cpus+=("$cpu"); rss+=("$mb")
    fwds+=("$(/usr/bin/python3 -c 'import json; print(round(json.load(open("'"$work/last.json"'"))["model_seconds"], 2))')")
  done
  wall_med=$(printf '%s\n' "${walls[@]}" | median)
  cpu_med=$(printf '%s\n' "${cpus[@]}" | median)
  pure=$(/usr/bin/python3 -c "print(round($tiles / $rate, 2))")
  threads=$(nproc)
  pure_mean=$(/usr/bin/python3 -c "print(round($tiles / $mean_rate, 2))")
  echo "| ${n}² | $tiles | $pure ($pure_mean) | $wall_med ($(printf '%s\n' "${walls[@]}" | minmax)) | $(/usr/bin/python3 -c "print(round($wall_med / $pure, 3), '(' + str(round($wall_med / $pure_mean, 3)) + ')')") | $(printf '%s\n' "${fwds[@]}" | median) | $cpu_med | $(/usr/bin/python3 -c "print(round(max(0.0, $cpu_med - $pure * $threads) / ($n * $n / 1e6), 4))") | $(printf '%s\n' "${rss[@]}" | median) |"
done

fi

echo
echo "## rsi scene (eurosat-rgbn on a NAIP-derived image, stride 32) vs pure model"
echo
naip="$root/../shared/data/naip/m_4709963_se_14_1_20190904.tif"
scene_image="$work/naip_x${scene_scale}.tif"
if [ ! -f "$scene_image" ]; then
  read -r w h < <(gdalinfo "$naip" | awk '/Size is/ {gsub(",", ""); print $3, $4}')
  read -r ulx uly < <(gdalinfo "$naip" | awk -F'[(,)]' '/Upper Left/ {print $2, $3}')
  gdal_translate -q -outsize $((w * scene_scale)) $((h * scene_scale)) -r bilinear -co TILED=YES \
    -a_ullr "$ulx" "$uly" "$(echo "$ulx + $w * $scene_scale * 5" | bc)" "$(echo "$uly - $h * $scene_scale * 5" | bc)" \
    "$naip" "$scene_image"
fi
# The pure model on the synthetic ramp and on real windows of the same image: this scene model's
# forward sorts (quantile features), so its speed depends on the values.
srate_ramp=$("$rsi" model check eurosat-rgbn --batch 64 --iterations "$check_batches" --no-eager --json -q |
        /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["tiles_per_second"], 1))')
# rsi scene runs one runner thread per core (up to 4), each with its share of the threads; the pure
# model is timed both ways and the faster rate is the baseline.
runners=$(( $(nproc) < 4 ? $(nproc) : 4 ))
read -r srate_one srate_runners < <("$rsi" model check eurosat-rgbn --batch 64 --iterations "$check_batches" --no-eager \
        --tiles-from "$scene_image" --runners "$runners" --json -q |
        /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["tiles_per_second"], 1), round(d["concurrent_tiles_per_second"] or 0, 1))')
srate=$(/usr/bin/python3 -c "print(max($srate_one, $srate_runners))")
swalls=(); srates=()
for r in $(seq "$reps"); do
  read -r wall cpu mb < <(timed "$rsi" scene "$scene_image" -o "$work/scene.tif" --stride 32 --batch 64 --overwrite --json -q)
  windows=$(/usr/bin/python3 -c 'import json; print(json.load(open("'"$work/last.json"'"))["windows"])')
  swalls+=("$wall")
  # rsi's own rate: windows / the job's seconds (everything after the model is loaded: planning,
  # statistics, reading, inference, writing), the same footing as `model check`, which also excludes loading
  srates+=("$(/usr/bin/python3 -c 'import json; print(round(json.load(open("'"$work/last.json"'"))["windows_per_second"], 1))')")
done
swall=$(printf '%s\n' "${swalls[@]}" | median)
srsi=$(printf '%s\n' "${srates[@]}" | median)
echo "Pure model: \`rsi model check eurosat-rgbn --batch 64 --iterations $check_batches --tiles-from IMAGE\` (one distinct"
echo "batch of 64 real windows of the image per timed batch; on the synthetic ramp instead: $srate_ramp windows/s): one runner"
echo "with all threads $srate_one windows/s, $runners runners side by side (\`--runners $runners\`, as \`rsi scene\` runs) $srate_runners;"
echo "the faster is the baseline. rsi's rate is the median of its own"
echo "summary's windows_per_second (model loaded: everything from planning to the written outputs); by wall time it"
echo "also pays process start-up and model loading (~1 s)."
echo
echo "| image | windows | pure model windows/s | rsi scene windows/s (ratio) | by wall time: windows/s (median wall s, ratio) |"
echo "|---|---|---|---|---|"
echo "| $(basename "$scene_image") | $windows | $srate | $srsi ($(/usr/bin/python3 -c "print(round($srsi / $srate, 3))")) | $(/usr/bin/python3 -c "print(round($windows / $swall, 1))") ($swall s, $(/usr/bin/python3 -c "print(round(($windows / $swall) / $srate, 3))")) |"
