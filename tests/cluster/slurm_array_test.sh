#!/usr/bin/env bash
# rsi on a SLURM job array, end to end on a one-node cluster on this machine.
#
#   tests/cluster/slurm_array_test.sh RSI_BINARY SHARED_DATA_DIR
#
# Starts the cluster with slurm_local.sh (unless one is already up), submits a job array of
# $RSI_SLURM_TASKS (default 4) tasks with `sbatch --array=0-(N-1) --wait`, each of which runs
# run_task below, then runs after_all once and checks every task's output. Stops the cluster again
# if this script started it. Needs root and the Debian packages slurm-wlm and munge.
#
# Environment: RSI_SLURM_TASKS (4), RSI_SLURM_TIMEOUT (seconds for the whole array, 900),
# RSI_SLURM_DIR / RSI_SLURM_PORT (passed on to slurm_local.sh).
set -euo pipefail

me=slurm_array_test
fail() {
  echo "$me: FAIL: $*" >&2
  exit 1
}
[ $# -eq 2 ] || {
  echo "usage: $0 RSI_BINARY SHARED_DATA_DIR" >&2
  exit 2
}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rsi=$(realpath "$1")
data=$(realpath "$2")
image=$data/spacenet/vegas_rgb.tif
tasks=${RSI_SLURM_TASKS:-4}
[ -x "$rsi" ] || fail "$1 is not an executable"
[ -f "$image" ] || fail "$image not found"
[ "$tasks" -ge 1 ] 2>/dev/null || fail "RSI_SLURM_TASKS must be a positive integer"

# =================================================================================================
# THE JOB. Everything rsi-specific is in these two functions; the rest is plumbing.
#
# run_task runs inside every array task (bash, set -euo pipefail) with
#   RSI (the binary), IMAGE (the input), OUT (a directory shared by all tasks),
#   SLURM_ARRAY_TASK_ID = K (0..N-1) and SLURM_ARRAY_TASK_COUNT = N set by SLURM.
# after_all runs once, on the submitting side, after every task has succeeded.
#
# Each task runs one shard of the building map (rsi reads K/N from SLURM_ARRAY_TASK_ID and
# SLURM_ARRAY_TASK_COUNT); after_all merges the parts, polygonises the merged mask, and compares both
# with a single-process run: identical pixels, georeferencing, and polygons as sorted WKT + attributes.
# The image is read on its own grid (--resample off): sharding splits the image's tile strips.
# shellcheck disable=SC2153 # RSI, IMAGE, OUT are set in the batch script
run_task() {
  "$RSI" buildings "$IMAGE" -o "$OUT/final.tif" --tile-size 256 --overlap 64 --resample off --threads 1 --quiet \
    --json >"$OUT/$SLURM_ARRAY_TASK_ID.json"
}

after_all() {
  local k
  for ((k = 0; k < tasks; k++)); do
    [ -s "$out/$k.json" ] || fail "task $k wrote no $out/$k.json"
    /usr/bin/python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["shard"] == [int(sys.argv[2]), int(sys.argv[3])], d' \
      "$out/$k.json" "$k" "$tasks" || fail "task $k: $out/$k.json does not report shard $k/$tasks"
  done
  "$rsi" merge "$out/final.tif.parts" --vector "$out/final.gpkg" --quiet || fail "rsi merge failed"
  OGR_CURRENT_DATE=2000-01-01T00:00:00Z "$rsi" buildings "$image" -o "$work/single.tif" --vector "$work/single.gpkg" \
    --tile-size 256 --overlap 64 --resample off --quiet --no-manifest || fail "single-process rsi buildings failed"
  /usr/bin/python3 - "$out/final.tif" "$work/single.tif" "$out/final.gpkg" "$work/single.gpkg" <<'PY' || fail "sharded and single-process results differ"
import sys
from osgeo import gdal, ogr, osr
gdal.UseExceptions()
a, b = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])
assert (a.RasterXSize, a.RasterYSize, a.RasterCount) == (b.RasterXSize, b.RasterYSize, b.RasterCount), "sizes differ"
assert a.GetGeoTransform() == b.GetGeoTransform(), "geotransforms differ"
sa, sb = osr.SpatialReference(a.GetProjection()), osr.SpatialReference(b.GetProjection())
assert sa.IsSame(sb), "CRSs differ"
for i in range(1, a.RasterCount + 1):
    ba, bb = a.GetRasterBand(i), b.GetRasterBand(i)
    assert ba.ReadRaster() == bb.ReadRaster(), "band %d pixels differ" % i
    assert ba.GetCategoryNames() == bb.GetCategoryNames(), "category names differ"
    ca, cb = ba.GetColorTable(), bb.GetColorTable()
    assert [ca.GetColorEntry(j) for j in range(ca.GetCount())] == [cb.GetColorEntry(j) for j in range(cb.GetCount())], "colour tables differ"
def features(path):
    ds = ogr.Open(path)  # keep the dataset alive while its layer is read
    layer = ds.GetLayer(0)
    return sorted((f.GetGeometryRef().ExportToWkt(), tuple(sorted(f.items().items()))) for f in layer)
fa, fb = features(sys.argv[3]), features(sys.argv[4])
assert len(fa) == len(fb), "%d vs %d polygons" % (len(fa), len(fb))
assert fa == fb, "polygons differ"
print("slurm_array_test: merged shards == single process (%d polygons)" % len(fa))
PY
}
# =================================================================================================

work=$(mktemp -d "${TMPDIR:-/tmp}/rsi-slurm-array.XXXXXX")
out=$work/out
mkdir -p "$out" "$work/logs"
chmod 0755 "$work"
started=0
job_id=""
cleanup() {
  if [ -n "$job_id" ]; then SLURM_CONF=${SLURM_CONF:-} scancel "$job_id" >/dev/null 2>&1 || true; fi
  if [ "$started" = 1 ]; then "$here/slurm_local.sh" stop >/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t0=$(date +%s.%N)
if "$here/slurm_local.sh" status >/dev/null 2>&1; then
  echo "$me: using the running cluster"
else
  started=1
  "$here/slurm_local.sh" start >/dev/null || fail "slurm_local.sh start failed"
fi
eval "$("$here/slurm_local.sh" env)"
t1=$(date +%s.%N)

# The batch script: variables, run_task, the task's own record, then the job.
{
  echo '#!/bin/bash'
  echo 'set -euo pipefail'
  printf 'RSI=%q\nIMAGE=%q\nOUT=%q\n' "$rsi" "$image" "$out"
  declare -f run_task
  # shellcheck disable=SC2016 # expanded in the task
  echo 'echo "$SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT" >"$OUT/task_$SLURM_ARRAY_TASK_ID.ids"'
  echo 'run_task'
} >"$work/job.sh"
chmod 0755 "$work/job.sh"

show_logs() {
  local f
  for f in "$work"/logs/*.out; do
    [ -s "$f" ] && {
      echo "--- $f"
      tail -n 20 "$f"
    }
  done >&2
  return 0
}

rc=0
submitted=$(timeout "${RSI_SLURM_TIMEOUT:-900}" sbatch --parsable --wait --array="0-$((tasks - 1))" \
  --job-name=rsi-array-test --chdir="$work" --output="$work/logs/%A_%a.out" "$work/job.sh") || rc=$?
job_id=${submitted%%;*}
t2=$(date +%s.%N)
if [ "$rc" = 124 ]; then
  show_logs
  fail "the job array did not finish within ${RSI_SLURM_TIMEOUT:-900} s"
elif [ "$rc" != 0 ]; then
  show_logs
  fail "sbatch --wait: exit code $rc (a task failed; logs above)"
fi
job_id=""

for ((k = 0; k < tasks; k++)); do
  [ -f "$out/task_$k.ids" ] || fail "task $k did not run"
  read -r id count <"$out/task_$k.ids"
  if [ "$id" != "$k" ] || [ "$count" != "$tasks" ]; then
    fail "task $k saw SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_TASK_COUNT=$count"
  fi
done
after_all
t3=$(date +%s.%N)

if [ "$started" = 1 ]; then
  started=0
  "$here/slurm_local.sh" stop >/dev/null || fail "slurm_local.sh stop failed"
fi
t4=$(date +%s.%N)
printf '%s: PASS: %d tasks; start %s s, array %s s, checks %s s, stop %s s\n' "$me" "$tasks" \
  "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" "$(elapsed "$t2" "$t3")" "$(elapsed "$t3" "$t4")"
