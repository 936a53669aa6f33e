#!/usr/bin/env bash
# Resident memory of one command over time, finer than /usr/bin/time's single peak: VmRSS read from
# /proc/PID/status every INTERVAL seconds, then a summary with the floor (lowest sample) and the top
# (highest sample) of every WINDOW seconds. A floor that climbs is memory the run keeps; a gap between
# floor and top that repeats in every window is memory taken and given back within one step (e.g. a
# model's forward pass). Sampled once a second, such transients alias into apparent "stretches".
#
#   bench/rss_trace.sh -- build/cli/rsi buildings big.tif -o out.tif --tile-size 512 --resample off --no-manifest -q
#   bench/rss_trace.sh --interval 0.05 --window 2 --out trace.tsv -- COMMAND ARGS...
#   bench/rss_trace.sh --smoke [--rsi PATH]   # 600² image, rsi buildings; fails without samples (CI)
#
# Writes OUT (default WORKDIR/rss_trace_<stamp>.tsv: seconds, RSS MB) and prints the summary. The
# command's exit status is passed on. Nothing is written into the repository.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY=/usr/bin/python3
WORKDIR="${RSI_BENCH_DIR:-/tmp/rsi-bench}"
RSI="${RSI:-$REPO/build/cli/rsi}"
INTERVAL=0.1
WINDOW=4
OUT=""
SMOKE=0

while [ $# -gt 0 ]; do
  case "$1" in
    --interval) INTERVAL="$2"; shift 2 ;;
    --window) WINDOW="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --rsi) RSI="$2"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "rss_trace.sh: unknown option $1 (the command goes after --)" >&2; exit 2 ;;
  esac
done

mkdir -p "$WORKDIR"
stamp="$(date +%Y%m%d_%H%M%S)_$$"
[ -n "$OUT" ] || OUT="$WORKDIR/rss_trace_$stamp.tsv"
if [ "$SMOKE" = 1 ]; then
  [ -d "$REPO/../shared/data" ] || { echo "rss_trace.sh: ../shared/data not found" >&2; exit 1; }
  img=$("$PY" "$HERE/make_image.py" --outdir "$WORKDIR" 600 | tail -1)
  smoke_out="$WORKDIR/rss_trace_smoke_$stamp.tif"
  set -- "$RSI" buildings "$img" -o "$smoke_out" --tile-size 512 --resample off --no-manifest --quiet
  INTERVAL=0.02
  WINDOW=0.5
fi
[ $# -gt 0 ] || { echo "rss_trace.sh: no command (give it after --)" >&2; exit 2; }

"$@" &
pid=$!
start=$(date +%s.%N)
: > "$OUT"
while kill -0 "$pid" 2>/dev/null; do
  kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$kb" ] && echo "$(date +%s.%N) $start $kb" | awk '{printf "%.3f\t%.1f\n", $1 - $2, $3 / 1024}' >> "$OUT"
  sleep "$INTERVAL"
done
status=0
wait "$pid" || status=$?
[ "$SMOKE" = 1 ] && rm -f "$smoke_out" "$smoke_out.aux.xml"

"$PY" - "$OUT" "$WINDOW" "$SMOKE" <<'PYEOF'
import statistics
import sys

path, window, smoke = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
rows = [tuple(float(v) for v in line.split()) for line in open(path) if line.strip()]
if len(rows) < 3:
    sys.exit("rss_trace.sh: only %d samples in %s (did the command run?)" % (len(rows), path))
mb = [r[1] for r in rows]
print("samples %d over %.1f s: median %.0f MB, peak %.0f MB (trace: %s)"
      % (len(rows), rows[-1][0], statistics.median(mb), max(mb), path))
print("window_start_s\tfloor_mb\ttop_mb")
start = 0.0
while start <= rows[-1][0]:
    w = [m for t, m in rows if start <= t < start + window]
    if w:
        print("%.1f\t%.0f\t%.0f" % (start, min(w), max(w)))
    start += window
if smoke and max(mb) <= 0:
    sys.exit("rss_trace.sh: no resident memory recorded")
PYEOF
exit "$status"
