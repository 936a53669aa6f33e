#!/usr/bin/env bash
# "Beyond the same tiles": what `rsi buildings` gains over the Python peer when it may use fewer model
# FLOPs (larger tiles: --tile-size auto) or reduced precision (an int8 model from `rsi model quantize`,
# native bf16), and what that does to the mask. Issue #10's same-tiles fp32 comparison is
# bench/peer_bench.sh; this script keeps the peer exactly as there (fp32, eager, the model's 512 tile)
# and varies only rsi.
#
#   bench/beyond_tiles.sh                      # 8000², 2 repetitions (~15 min on 2 Zen 4 cores)
#   bench/beyond_tiles.sh --size 2000 --reps 1 # a quick look
#   bench/beyond_tiles.sh --smoke              # 600², 1 repetition; fails if a mask agrees < 99 % (CI)
#
# Variants, each run once per repetition in this order under /usr/bin/time (wall, CPU, peak RSS):
#   peer         bench/peer_pipeline.py, fp32, tile 512, overlap 128, batch 1
#   fp32         rsi buildings, the same tiles (512, overlap 128, batch 1)
#   fp32-auto    --tile-size auto (the largest tile the default --ram budget allows)
#   bf16         --precision bf16, tile 512
#   int8         the int8 model (rsi model quantize buildings: onednn, 16 inria/train crops), tile 512
#   int8-auto    the int8 model with --tile-size auto
# All rsi runs use --resample off (the image's own 0.24 x 0.30 m pixels, as the peer reads them).
# The masks of the first repetition are compared with rsi's fp32 mask: pixel agreement and building
# IoU (pixels marked building by both / by either). km²/h is at 0.3 m (0.09 m² per pixel).
# Results: WORKDIR/beyond_<stamp>/runs.tsv and report.md. Nothing is written into the repository.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY=/usr/bin/python3
SIZE=8000
REPS=2
RSI="${RSI:-$REPO/build/cli/rsi}"
WORKDIR="${RSI_BENCH_DIR:-/tmp/rsi-bench}"
MODEL="$REPO/data/models/buildings.pt"
THREADS="$(nproc)"
SMOKE=0

while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --rsi) RSI="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --smoke) SMOKE=1; SIZE=600; REPS=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "beyond_tiles.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

OUT="$WORKDIR/beyond_$(date -u +%Y%m%d_%H%M%S)"
mkdir -p "$OUT"
img=$("$PY" "$HERE/make_image.py" --outdir "$WORKDIR" "$SIZE" | tail -1)
cat "$img" > /dev/null
int8="$OUT/buildings-int8.pt"
"$RSI" model quantize "$MODEL" -o "$int8" >&2

variant_cmd() {  # variant_cmd NAME OUT -> CMD
  local common=(--overlap 128 --batch 1 --threads "$THREADS" --resample off --no-manifest --overwrite --json -q)
  case "$1" in
    peer) CMD=("$PY" "$HERE/peer_pipeline.py" "$img" -o "$2" -m "$MODEL" --tile-size 512 --overlap 128 --batch 1 --threads "$THREADS") ;;
    fp32) CMD=("$RSI" buildings "$img" -o "$2" -m "$MODEL" --tile-size 512 "${common[@]}") ;;
    fp32-auto) CMD=("$RSI" buildings "$img" -o "$2" -m "$MODEL" --tile-size auto "${common[@]}") ;;
    bf16) CMD=("$RSI" buildings "$img" -o "$2" -m "$MODEL" --tile-size 512 --precision bf16 "${common[@]}") ;;
    int8) CMD=("$RSI" buildings "$img" -o "$2" -m "$int8" --tile-size 512 "${common[@]}") ;;
    int8-auto) CMD=("$RSI" buildings "$img" -o "$2" -m "$int8" --tile-size auto "${common[@]}") ;;
  esac
}

VARIANTS="peer fp32 fp32-auto bf16 int8 int8-auto"
printf 'variant\trep\twall\tcpu\trss_kb\ttile_size\n' > "$OUT/runs.tsv"
for rep in $(seq 1 "$REPS"); do
  for v in $VARIANTS; do
    variant_cmd "$v" "$OUT/$v.tif"
    sync
    t0=$(date +%s%N)
    /usr/bin/time -f '%U %S %M' -o "$OUT/time.txt" "${CMD[@]}" > "$OUT/$v.json" 2> "$OUT/$v.log" ||
      { echo "beyond_tiles.sh: $v failed:" >&2; tail -n 20 "$OUT/$v.log" >&2; exit 1; }
    t1=$(date +%s%N)
    read -r user sys rss < "$OUT/time.txt"
    tile=$("$PY" -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get("tile_size", 512))
except Exception: print(512)' "$OUT/$v.json")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b-a)/1e9}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$rep" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')" "$rss" "$tile" >> "$OUT/runs.tsv"
    echo "  $v rep $rep: $wall s wall, tile $tile" >&2
    [ "$rep" = 1 ] && cp "$OUT/$v.tif" "$OUT/first_$v.tif"
  done
done

"$PY" - "$OUT" "$SIZE" "$SMOKE" $VARIANTS > "$OUT/report.md" <<'EOF'
import csv, statistics, sys
import numpy as np
import rasterio
out, size, smoke, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
low = []
rows = list(csv.DictReader(open(out + "/runs.tsv"), delimiter="\t"))
def med(v, key): return statistics.median(float(r[key]) for r in rows if r["variant"] == v)
def span(v, key):
    xs = [float(r[key]) for r in rows if r["variant"] == v]
    return "%.1f–%.1f" % (min(xs), max(xs))
def compare(a, b):
    equal = both = either = 0
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        for _, win in ra.block_windows(1):
            x, y = ra.read(1, window=win), rb.read(1, window=win)
            equal += int(np.count_nonzero(x == y))
            bx, by = x == 1, y == 1
            both += int(np.count_nonzero(bx & by)); either += int(np.count_nonzero(bx | by))
    return equal / float(size * size), both / float(max(1, either))
km2 = size * size * 0.09 / 1e6
peer = med("peer", "wall")
print("| variant | tile | wall s, median (min–max) | CPU s | peak RSS MB | wall / peer | km²/h at 0.3 m | pixels equal to rsi fp32 | building IoU with rsi fp32 |")
print("|---|---|---|---|---|---|---|---|---|")
for v in variants:
    tile = [r["tile_size"] for r in rows if r["variant"] == v][0]
    agree, iou = compare(out + "/first_fp32.tif", out + "/first_%s.tif" % v)
    print("| %s | %s | %.1f (%s) | %.1f | %d | %.2fx | %.0f | %.4f %% | %.4f |" % (
        v, tile, med(v, "wall"), span(v, "wall"), med(v, "cpu"), med(v, "rss_kb") / 1024, med(v, "wall") / peer,
        km2 / (med(v, "wall") / 3600), 100 * agree, iou))
    if agree < 0.99:
        low.append("%s: %.4f" % (v, agree))
if smoke and low:
    sys.exit("beyond_tiles.sh --smoke: masks agree with rsi's fp32 mask on < 99 % of the pixels: " + ", ".join(low))
EOF
cat "$OUT/report.md"
echo "results: $OUT" >&2
