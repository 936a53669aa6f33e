#!/usr/bin/env bash
# Benchmark `rsi tile` against gdal_retile.py and against one gdal_translate copy of the same image.
#
#   bench/tile_bench.sh                       # sizes 4000 and 16000, 3 repetitions (~2-5 min on 2 cores)
#   bench/tile_bench.sh --smoke               # one tiny image, 1 repetition, finishes in seconds (for CI)
#   bench/tile_bench.sh --sizes "2000 8000" --reps 5 --png --rsi build/cli/rsi
#
# For every size the generated image (bench/make_image.py: the real SpaceNet Vegas scene mirrored into
# an N x N 3-band Byte GeoTIFF, 512x512 blocks, uncompressed) is read once, untimed, so every tool
# runs with a warm page cache (dropping the cache needs root and would disturb other users; we don't).
# Each repetition then runs every tool once, interleaved and in a rotating order, under
# /usr/bin/time -v, after a `sync` (untimed) so one tool's dirty pages are not flushed on the next
# tool's clock. Outputs are deleted between runs. Reported: median and min-max of wall time, user+sys
# CPU and peak RSS, and ratios of medians measured in the same run (retile/rsi, rsi/translate).
#
# Tools (same tile size and overlap, no creation options = uncompressed GeoTIFF everywhere):
#   rsi        rsi tile IMG OUT --tile-size 512 --overlap 64 -q            (+ index.geojson/csv)
#   retile     gdal_retile.py -ps 512 512 -overlap 64 -targetDir OUT IMG
#   translate  gdal_translate -q IMG OUT.tif                               (one full copy)
#   with --png: rsi ... --format PNG and gdal_retile.py ... -of PNG as well.
# Everything is written under --workdir (default /tmp/rsi-bench), never into the repository.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"

SIZES="4000 16000"
REPS=3
PNG=0
SMOKE=0
RSI="${RSI:-}"
WORKDIR="${RSI_BENCH_DIR:-/tmp/rsi-bench}"
TILE=512
OVERLAP=64
MD_OUT=""

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; cat <<EOF
Options:
  --sizes "N ..."   image sides in pixels (default: "$SIZES")
  --reps R          repetitions per tool and size (default: $REPS)
  --png             also compare PNG tiles (rsi --format PNG vs gdal_retile.py -of PNG)
  --smoke           size 1000, 1 repetition (a few seconds)
  --rsi PATH        rsi binary (default: build-bench/cli/rsi, else build/cli/rsi)
  --workdir DIR     scratch directory (default: $WORKDIR)
  --md FILE         also write the markdown report to FILE (default: WORKDIR/tile_bench_<time>.md)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --png) PNG=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    --rsi) RSI="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --md) MD_OUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tile_bench.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [ "$SMOKE" = 1 ]; then SIZES="1000"; REPS=1; fi

if [ -z "$RSI" ]; then
  for c in "$REPO/build-bench/cli/rsi" "$REPO/build/cli/rsi"; do
    if [ -x "$c" ]; then RSI="$c"; break; fi
  done
fi
if [ -z "$RSI" ] || [ ! -x "$RSI" ]; then echo "tile_bench.sh: rsi binary not found (build it, or pass --rsi PATH)" >&2; exit 1; fi
RSI="$(cd "$(dirname "$RSI")" && pwd)/$(basename "$RSI")"

if [ ! -x /usr/bin/time ]; then
  echo "tile_bench.sh: /usr/bin/time missing, installing the 'time' package" >&2
  apt-get install -y -qq time >/dev/null || { echo "tile_bench.sh: cannot install 'time'" >&2; exit 1; }
fi
for t in gdal_retile.py gdal_translate gdalinfo /usr/bin/python3; do
  command -v "$t" >/dev/null || { echo "tile_bench.sh: $t not found (install gdal-bin python3-gdal)" >&2; exit 1; }
done

mkdir -p "$WORKDIR"
WORKDIR="$(cd "$WORKDIR" && pwd)"
case "$WORKDIR/" in "$REPO"/*) echo "tile_bench.sh: refusing to work inside the repository: $WORKDIR" >&2; exit 2 ;; esac
STAMP="$(date +%Y%m%d-%H%M%S)"
RAW="$WORKDIR/tile_bench_$STAMP.tsv"
[ -n "$MD_OUT" ] || MD_OUT="$WORKDIR/tile_bench_$STAMP.md"
RUN="$WORKDIR/run"       # per-run outputs, deleted after each run
LOG="$WORKDIR/last_run.log"

printf 'size\ttool\trep\twall_s\tuser_s\tsys_s\tmaxrss_kb\tfiles\tbytes\n' > "$RAW"

# run_one SIZE TOOL REP -- CMD...: times CMD, appends one row to $RAW.
run_one() {
  local size="$1" tool="$2" rep="$3"; shift 4
  rm -rf "$RUN"; mkdir -p "$RUN"
  case "$tool" in retile*) mkdir -p "$RUN/tiles" ;; esac   # gdal_retile.py needs an existing -targetDir
  sync
  local tv="$WORKDIR/time.txt" t0 t1
  t0=$(date +%s%N)
  if ! /usr/bin/time -v -o "$tv" "$@" >"$LOG" 2>&1; then
    echo "tile_bench.sh: $tool failed at size $size (rep $rep):" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  t1=$(date +%s%N)
  local wall user sys rss files bytes
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  user=$(awk -F': ' '/User time \(seconds\)/{print $2}' "$tv")
  sys=$(awk -F': ' '/System time \(seconds\)/{print $2}' "$tv")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$tv")
  files=$(find "$RUN" -type f | wc -l)
  bytes=$(du -sb "$RUN" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$tool" "$rep" "$wall" "$user" "$sys" "$rss" "$files" "$bytes" >> "$RAW"
  printf '  %-11s rep %s: %7.2f s wall, %7.2f s cpu, %6d MB peak RSS, %5d files\n' \
    "$tool" "$rep" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" "$((rss / 1024))" "$files" >&2
  rm -rf "$RUN"
}

TOOLS=(rsi retile translate)
[ "$PNG" = 1 ] && TOOLS+=(rsi_png retile_png)

cmd_for() {  # cmd_for TOOL IMG -> sets CMD array
  local img="$2"
  case "$1" in
    rsi)        CMD=("$RSI" tile "$img" "$RUN/tiles" --tile-size "$TILE" --overlap "$OVERLAP" -q) ;;
    retile)     CMD=(gdal_retile.py -q -ps "$TILE" "$TILE" -overlap "$OVERLAP" -targetDir "$RUN/tiles" "$img") ;;
    translate)  CMD=(gdal_translate -q "$img" "$RUN/copy.tif") ;;
    rsi_png)    CMD=("$RSI" tile "$img" "$RUN/tiles" --tile-size "$TILE" --overlap "$OVERLAP" --format PNG -q) ;;
    retile_png) CMD=(gdal_retile.py -q -of PNG -ps "$TILE" "$TILE" -overlap "$OVERLAP" -targetDir "$RUN/tiles" "$img") ;;
  esac
}

echo "tile_bench: rsi=$RSI sizes=[$SIZES] reps=$REPS workdir=$WORKDIR" >&2
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
for size in $SIZES; do
  img=$(/usr/bin/python3 "$HERE/make_image.py" --outdir "$WORKDIR" "$size")
  echo "size $size: $img ($(du -h "$img" | cut -f1)); warm-up read (untimed)" >&2
  cat "$img" > /dev/null
  # Process start-up alone (loading the shared libraries), for reference.
  for rep in $(seq 1 "$REPS"); do
    run_one "$size" rsi_startup "$rep" -- "$RSI" --version
  done
  n=${#TOOLS[@]}
  for rep in $(seq 1 "$REPS"); do
    for k in $(seq 0 $((n - 1))); do
      tool=${TOOLS[$(((k + rep - 1) % n))]}   # rotate the order every repetition
      cmd_for "$tool" "$img"
      run_one "$size" "$tool" "$rep" -- "${CMD[@]}"
    done
  done
done
rm -f "$WORKDIR/time.txt"

LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
{
  echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM;" \
       "$(gdalinfo --version | cut -d, -f1); rsi $("$RSI" --version | head -1 | awk '{print $2}');" \
       "scratch $WORKDIR on $(df -PT "$WORKDIR" | awk 'NR==2{print $2 " (" $1 ")"}');" \
       "load average at start $LOAD_START, at end $LOAD_END."
  echo
  /usr/bin/python3 "$HERE/summarize.py" "$RAW" --tile "$TILE" --overlap "$OVERLAP"
} | tee "$MD_OUT"
echo "raw results: $RAW; report: $MD_OUT" >&2
