#!/usr/bin/env bash
# Benchmark `rsi buildings` against a Python peer pipeline (bench/peer_pipeline.py: rasterio windows,
# torch.jit.load, float64 full-size blending accumulators) on the same images, same .pt model, same
# tile size / overlap / batch / threads, plus rsi's pure-model rate (`rsi model check`).
#
#   bench/peer_bench.sh                                  # 2000 4000 8000, 3 repetitions (~1 h on 2 cores)
#   bench/peer_bench.sh --smoke                          # 600², 1 repetition, masks must agree >= 99% (CI)
#   bench/peer_bench.sh --sizes "2000 8000" --reps 2 --rsi-only-sizes "16000 32000"
#   bench/peer_bench.sh --plot docs/bench_time_rss.png   # also draw the plot (bench/plot_bench.py)
#
# Images: bench/make_image.py (the real Vegas scene mirrored into N x N 3-band Byte tiled GeoTIFF),
# read once untimed so both tools start from a warm page cache. Each repetition runs rsi and the peer
# once, alternating which goes first, under /usr/bin/time (wall from `date`, CPU = user+sys, peak RSS),
# after an untimed `sync`. rsi runs with --resample off (the images are 0.24 x 0.30 m, the model
# 0.3 m: without it rsi would warp while the peer does not) and the default --blend hann, which the
# peer reproduces (--window rsi), so the masks must agree; the agreement is measured after the first
# repetition of each size. Sizes in --rsi-only-sizes run rsi only (the peer's accumulators would need
# ~24 B per pixel: 6 GB at 16000², 24 GB at 32000²).
#
# Results go to WORKDIR/peer_bench_<stamp>/: runs.tsv (one row per run), facts.tsv (pure-model
# rate, mask agreement, load average, machine), and report.md (bench/plot_bench.py). Nothing is
# written into the repository unless --plot names a path there.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY=/usr/bin/python3   # Debian's python3 has torch and rasterio; a pyenv python3 may not

SIZES="2000 4000 8000"
RSI_ONLY_SIZES=""
REPS=3
SMOKE=0
RSI="${RSI:-}"
WORKDIR="${RSI_BENCH_DIR:-/tmp/rsi-bench}"
MODEL="$REPO/data/models/buildings.pt"
TILE=512
OVERLAP=128     # the model's tile.overlap; passed explicitly to both tools
BATCH=4
THREADS="$(nproc)"
PLOT=""
MIN_AGREEMENT=0.99
CHECK_ITERATIONS=3   # batches timed by `rsi model check`

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; cat <<EOF
Options:
  --sizes "N ..."           sizes run by both tools (default: "$SIZES")
  --rsi-only-sizes "N ..."  sizes run by rsi only (default: none)
  --reps R                  repetitions (default: $REPS)
  --smoke                   600², 1 repetition, no timing targets; fails if the masks agree < 99%
  --rsi PATH                rsi binary (default: \$RSI, else build-bench/cli/rsi, else build/cli/rsi)
  --threads N               threads for both tools (default: nproc = $THREADS)
  --batch B                 batch for both tools (default: $BATCH)
  --workdir DIR             scratch directory (default: $WORKDIR)
  --plot PNG                draw the plot there as well
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --rsi-only-sizes) RSI_ONLY_SIZES="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --rsi) RSI="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --plot) PLOT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "peer_bench.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [ "$SMOKE" = 1 ]; then SIZES="600"; RSI_ONLY_SIZES=""; REPS=1; CHECK_ITERATIONS=1; fi

if [ -z "$RSI" ]; then
  for c in "$REPO/build-bench/cli/rsi" "$REPO/build/cli/rsi"; do
    if [ -x "$c" ]; then RSI="$c"; break; fi
  done
fi
if [ -z "$RSI" ] || [ ! -x "$RSI" ]; then echo "peer_bench.sh: rsi binary not found (build it, or pass --rsi PATH)" >&2; exit 1; fi
RSI="$(cd "$(dirname "$RSI")" && pwd)/$(basename "$RSI")"
[ -x /usr/bin/time ] || { echo "peer_bench.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
"$PY" -c 'import torch, rasterio, numpy' 2>/dev/null ||
  { echo "peer_bench.sh: $PY lacks torch/rasterio/numpy (apt-get install python3-torch python3-rasterio)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "peer_bench.sh: model missing: $MODEL" >&2; exit 1; }

mkdir -p "$WORKDIR"
WORKDIR="$(cd "$WORKDIR" && pwd)"
case "$WORKDIR/" in "$REPO"/*) echo "peer_bench.sh: refusing to work inside the repository: $WORKDIR" >&2; exit 2 ;; esac
OUT="$WORKDIR/peer_bench_$(date +%Y%m%d-%H%M%S)"
[ "$SMOKE" = 1 ] && OUT="$WORKDIR/peer_bench_smoke_$$"
mkdir -p "$OUT"
RUNS="$OUT/runs.tsv"
FACTS="$OUT/facts.tsv"
LOG="$OUT/last_run.log"
printf 'size\ttool\trep\twall_s\tuser_s\tsys_s\tmaxrss_kb\ttiles\tload1\tmodel_s\n' > "$RUNS"
printf 'size\tkey\tvalue\n' > "$FACTS"
fact() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$FACTS"; }

fact 0 cores "$(nproc)"
fact 0 cpu "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
fact 0 blas "$(dpkg-query -W -f='${Package} ${Version}' libopenblas0-pthread 2>/dev/null || echo unknown)"
fact 0 rsi_version "$("$RSI" --version | head -1)"
fact 0 torch_python "$("$PY" -c 'import torch; print(torch.__version__)')"
fact 0 threads "$THREADS"
fact 0 tile "$TILE"; fact 0 overlap "$OVERLAP"; fact 0 batch "$BATCH"; fact 0 reps "$REPS"
fact 0 load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
fact 0 date_utc "$(date -u '+%Y-%m-%d %H:%M UTC')"

# json_number KEY FILE: the first "KEY": number in FILE (both tools print a JSON summary).
json_number() {
  awk -v k="\"$1\"" 'match($0, k ": *[0-9.eE+-]+") { s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); print s; exit }' "$2"
}

# run_one SIZE TOOL REP -- CMD...: times CMD, appends a row to runs.tsv.
run_one() {
  local size="$1" tool="$2" rep="$3"; shift 4
  sync
  local tv="$OUT/time.txt" t0 t1 load
  load=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s%N)
  if ! /usr/bin/time -f '%U %S %M' -o "$tv" "$@" >"$LOG" 2>&1; then
    echo "peer_bench.sh: $tool failed at size $size (rep $rep):" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  t1=$(date +%s%N)
  local wall user sys rss tiles model_s
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  read -r user sys rss < "$tv"
  # Both tools print a JSON summary with "tiles" and "model_seconds" (time inside the forward calls).
  tiles=$(json_number tiles "$LOG"); model_s=$(json_number model_seconds "$LOG")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$tool" "$rep" "$wall" "$user" "$sys" "$rss" "$tiles" "$load" "$model_s" >> "$RUNS"
  printf '  %-5s %6d² rep %s: %8.2f s wall, %8.2f s cpu, %6d MB peak RSS (load %s)\n' \
    "$tool" "$size" "$rep" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" "$((rss / 1024))" "$load" >&2
}

rsi_cmd() {  # rsi_cmd IMG OUT
  CMD=("$RSI" buildings "$1" -o "$2" -m "$MODEL" --tile-size "$TILE" --overlap "$OVERLAP" --batch "$BATCH"
       --threads "$THREADS" --resample off --no-manifest --overwrite --json -q)
}
peer_cmd() {  # peer_cmd IMG OUT
  CMD=("$PY" "$HERE/peer_pipeline.py" "$1" -o "$2" -m "$MODEL" --tile-size "$TILE" --overlap "$OVERLAP"
       --batch "$BATCH" --threads "$THREADS")
}

echo "peer_bench: rsi=$RSI sizes=[$SIZES] rsi-only=[$RSI_ONLY_SIZES] reps=$REPS threads=$THREADS results=$OUT" >&2
status=0
for size in $SIZES $RSI_ONLY_SIZES; do
  both=0
  for s in $SIZES; do [ "$s" = "$size" ] && both=1; done
  img=$("$PY" "$HERE/make_image.py" --outdir "$WORKDIR" "$size" | tail -1)
  echo "size $size: $img ($(du -h "$img" | cut -f1)); warm-up read (untimed)" >&2
  cat "$img" > /dev/null
  # Pure model: the same optimised forward on the same tile size and batch, no I/O.
  rate=$("$RSI" model check "$MODEL" --tile-size "$TILE" --batch "$BATCH" --threads "$THREADS" --iterations "$CHECK_ITERATIONS" \
           --no-eager --json -q | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tiles_per_second"])')
  fact "$size" pure_tiles_per_s "$rate"
  for rep in $(seq 1 "$REPS"); do
    rsi_out="$OUT/rsi_$size.tif"; peer_out="$OUT/peer_$size.tif"
    order="rsi peer"
    [ $((rep % 2)) = 0 ] && order="peer rsi"   # alternate which tool runs first
    [ "$both" = 0 ] && order="rsi"
    for tool in $order; do
      if [ "$tool" = rsi ]; then rsi_cmd "$img" "$rsi_out"; else peer_cmd "$img" "$peer_out"; fi
      run_one "$size" "$tool" "$rep" -- "${CMD[@]}"
    done
    if [ "$rep" = 1 ] && [ "$both" = 1 ]; then
      agree=$("$PY" "$HERE/peer_pipeline.py" --agreement "$rsi_out" "$peer_out")
      fact "$size" agreement "$agree"
      echo "  masks agree on $(awk -v a="$agree" 'BEGIN{printf "%.4f", 100*a}')% of pixels" >&2
      if awk -v a="$agree" -v m="$MIN_AGREEMENT" 'BEGIN{exit !(a < m)}'; then
        echo "peer_bench.sh: rsi and the peer disagree at size $size: $agree < $MIN_AGREEMENT" >&2
        status=1
      fi
    fi
    rm -f "$rsi_out" "$peer_out"
  done
done
rm -f "$OUT/time.txt"
fact 0 load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

plot_args=(--md "$OUT/report.md")
[ "$SMOKE" = 1 ] && plot_args+=(--no-targets)
if [ -n "$PLOT" ]; then plot_args+=(--png "$PLOT"); fi
"$PY" "$HERE/plot_bench.py" "$OUT" "${plot_args[@]}"
echo "results: $OUT (runs.tsv, facts.tsv, report.md)" >&2
if [ "$SMOKE" = 1 ]; then
  [ "$status" = 0 ] && echo "peer_bench.sh --smoke: OK (masks agree)" >&2
  rm -f "$img.aux.xml" 2>/dev/null || true
fi
exit "$status"
