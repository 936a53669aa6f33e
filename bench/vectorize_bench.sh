#!/usr/bin/env bash
# rsi vectorize against gdal_polygonize.py on large building masks (bench/make_mask.py: real Inria
# footprints mosaicked to N x N, 0.3 m UTM, tiled DEFLATE GeoTIFF). Both write a GeoPackage of the
# building pixels (value 1; gdal_polygonize.py with the mask as its own -mask, 4-connected like rsi).
# Runs are interleaved and rotated; wall, CPU and peak RSS (/usr/bin/time -v), medians (min-max) and
# ratios of medians. The first repetition's outputs are compared feature by feature
# (bench/compare_polygons.py: same count, same polygons).
#
#   bench/vectorize_bench.sh [--sizes "4000 16000"] [--reps 3] [--rsi PATH] [--workdir DIR] [--smoke]
#
# Raw TSV and a markdown report go to WORKDIR (default /tmp/rsi-bench). Not a test: no timing assertions.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
SIZES="4000 16000"
REPS=3
RSI="${RSI:-}"
WORKDIR="${RSI_BENCH_DIR:-/tmp/rsi-bench}"
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --rsi) RSI="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --smoke) SIZES=1000; REPS=1; shift ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "vectorize_bench.sh: unknown option: $1" >&2; exit 2 ;;
  esac
done
if [ -z "$RSI" ]; then
  for c in "$REPO/build/cli/rsi" "$REPO/build-bench/cli/rsi"; do [ -x "$c" ] && { RSI="$c"; break; }; done
fi
[ -n "$RSI" ] && [ -x "$RSI" ] || { echo "vectorize_bench.sh: rsi binary not found (--rsi PATH)" >&2; exit 1; }
for t in gdal_polygonize.py /usr/bin/python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "vectorize_bench.sh: $t not found (gdal-bin, python3-gdal, time)" >&2; exit 1; }
done
mkdir -p "$WORKDIR"
WORKDIR="$(cd "$WORKDIR" && pwd)"
case "$WORKDIR/" in "$REPO"/*) echo "vectorize_bench.sh: refusing to work inside the repository" >&2; exit 2 ;; esac
STAMP="$(date +%Y%m%d-%H%M%S)"
RAW="$WORKDIR/vectorize_bench_$STAMP.tsv"
MD="$WORKDIR/vectorize_bench_$STAMP.md"
RUN="$WORKDIR/vrun"
printf 'size\ttool\trep\twall_s\tuser_s\tsys_s\tmaxrss_kb\tfeatures\n' > "$RAW"

run_one() {  # run_one SIZE TOOL REP OUT -- COMMAND...
  local size=$1 tool=$2 rep=$3 out=$4; shift 5
  rm -f "$out"
  sync
  local tv="$WORKDIR/vtime.txt" t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$tv" "$@" > "$WORKDIR/vlast.log" 2>&1 || { echo "vectorize_bench.sh: $tool failed:" >&2; tail -5 "$WORKDIR/vlast.log" >&2; exit 1; }
  t1=$(date +%s%N)
  local feats
  feats=$(/usr/bin/python3 -c "from osgeo import ogr; ds = ogr.Open('$out'); print(ds.GetLayer(0).GetFeatureCount())")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$tool" "$rep" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')" \
    "$(awk -F': ' '/User time/{print $2}' "$tv")" "$(awk -F': ' '/System time/{print $2}' "$tv")" \
    "$(awk -F': ' '/Maximum resident/{print $2}' "$tv")" "$feats" >> "$RAW"
  echo "  $tool rep $rep: $(tail -1 "$RAW" | cut -f4) s wall, $feats features" >&2
}

echo "vectorize_bench: rsi=$RSI sizes=[$SIZES] reps=$REPS" >&2
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
COMPARE=()
DIFFER=""
for size in $SIZES; do
  mask=$(/usr/bin/python3 "$HERE/make_mask.py" --outdir "$WORKDIR" "$size")
  cat "$mask" > /dev/null
  rm -rf "$RUN"; mkdir -p "$RUN"
  for rep in $(seq 1 "$REPS"); do
    order=(rsi gdal); [ $((rep % 2)) -eq 0 ] && order=(gdal rsi)
    for tool in "${order[@]}"; do
      if [ "$tool" = rsi ]; then
        run_one "$size" rsi "$rep" "$RUN/rsi_$rep.gpkg" -- "$RSI" vectorize "$mask" -o "$RUN/rsi_$rep.gpkg" --classes 1 -q
      else
        run_one "$size" gdal_polygonize "$rep" "$RUN/gdal_$rep.gpkg" -- gdal_polygonize.py -q -mask "$mask" "$mask" -of GPKG "$RUN/gdal_$rep.gpkg"
      fi
    done
  done
  verdict=$(/usr/bin/python3 "$HERE/compare_polygons.py" "$RUN/rsi_1.gpkg" "$RUN/gdal_1.gpkg") || DIFFER="$DIFFER $size"
  COMPARE+=("$size $verdict")
  rm -rf "$RUN"
done
rm -f "$WORKDIR/vtime.txt" "$WORKDIR/vlast.log"

/usr/bin/python3 - "$RAW" "$MD" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" "${COMPARE[@]}" <<'EOF'
import csv, statistics, sys
raw, md, load0, load1 = sys.argv[1:5]
compare = sys.argv[5:]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
def med(vals):
    return statistics.median(vals), min(vals), max(vals)
out = ["Load average at start %s, at end %s. Median (min-max)." % (load0, load1), "",
       "| size | tool | wall s | CPU s | peak RSS MB | features |", "|---|---|---|---|---|---|"]
sizes = sorted({int(r["size"]) for r in rows})
ratio = []
for s in sizes:
    m = {}
    for tool in ("rsi", "gdal_polygonize"):
        rs = [r for r in rows if int(r["size"]) == s and r["tool"] == tool]
        w = med([float(r["wall_s"]) for r in rs]); c = med([float(r["user_s"]) + float(r["sys_s"]) for r in rs])
        k = med([int(r["maxrss_kb"]) / 1024 for r in rs])
        m[tool] = (w, c, k)
        out.append("| %d² | `%s` | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) | %.0f (%.0f–%.0f) | %s |" % (
            (s, "rsi vectorize" if tool == "rsi" else "gdal_polygonize.py") + w + c + k + (rs[0]["features"],)))
    ratio.append("| %d² | %.2fx | %.2fx | %.2fx |" % (s, m["gdal_polygonize"][0][0] / m["rsi"][0][0],
                                                    m["gdal_polygonize"][1][0] / m["rsi"][1][0], m["rsi"][2][0] / m["gdal_polygonize"][2][0]))
out += ["", "| size | wall: gdal_polygonize / rsi (target ≥ 1) | CPU: gdal_polygonize / rsi | peak RSS: rsi / gdal_polygonize |", "|---|---|---|---|"] + ratio
out += ["", "Same features (bench/compare_polygons.py on the first repetition):", ""] + ["- %s" % c for c in compare]
open(md, "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
echo "raw results: $RAW; report: $MD" >&2
[ -z "$DIFFER" ] || { echo "vectorize_bench.sh: rsi and gdal_polygonize.py features differ at size(s)$DIFFER" >&2; exit 1; }
