#!/usr/bin/env bash
# kill -9 and SIGTERM at random moments, then --resume: the building map and the scene map (lattice and
# CSV) must be byte-identical to an uninterrupted run, with no temporary files or parts left behind.
#
#   tests/reliability/kill_resume_test.sh RSI_BINARY SHARED_DATA_DIR
#
# The delays come from RSI_KILL_SEED (default: the time); the script prints them so a failure can be
# replayed. Uses the real Vegas scene with small tiles, so a run has many strips.
set -euo pipefail
me=kill_resume_test
fail() { echo "$me: FAIL: $*" >&2; exit 1; }
[ $# -eq 2 ] || { echo "usage: $0 RSI_BINARY SHARED_DATA_DIR" >&2; exit 2; }
rsi=$(realpath "$1")
image=$2/spacenet/vegas_rgb.tif
[ -f "$image" ] || fail "real test data missing: $image (the tests need ../shared/data)"
work=$(mktemp -d "${TMPDIR:-/tmp}/rsi-kill.XXXXXX")
trap 'rm -rf "$work"' EXIT
seed=${RSI_KILL_SEED:-$(date +%s)}
RANDOM=$seed
echo "$me: seed $seed"
opts=(--tile-size 128 --overlap 32 --batch 2 --threads 2 --no-manifest --quiet)

# kill_and_resume LABEL OUTPUT MAX_KILLS MIN_DELAY_MS FULL_MS UNIT COMMAND...: runs COMMAND --resume in
# the background and kill -9s it after a random delay, until a run finishes by itself or MAX_KILLS
# kills were made, then resumes once more if needed. Sets `kills`.
kill_and_resume() {
  local label=$1 output=$2 max_kills=$3 min_ms=$4 full_ms=$5 unit=$6 pid delay_ms journaled
  shift 6
  kills=0
  while [ ! -f "$output" ] && [ "$kills" -lt "$max_kills" ]; do
    "$@" --resume &
    pid=$!
    delay_ms=$((min_ms + RANDOM % (full_ms * 2 / 3 + 1)))
    sleep "$(echo "scale=3; $delay_ms / 1000" | bc)"
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      kills=$((kills + 1))
      journaled=$(grep -c '"strip"' "$output.parts/shard-0-of-1.journal" 2>/dev/null || true)
      echo "$me: $label: kill -9 after ${delay_ms} ms (${journaled:-0} $unit journaled)"
    else
      wait "$pid" || fail "$label: a resumed run failed"
    fi
  done
  [ -f "$output" ] || "$@" --resume || fail "$label: final resume failed"
}

t0=$(date +%s.%N)
"$rsi" buildings "$image" -o "$work/full.tif" "${opts[@]}" || fail "uninterrupted run failed"
t1=$(date +%s.%N)
full_ms=$(echo "($t1 - $t0) * 1000 / 1" | bc)
echo "$me: uninterrupted run ${full_ms} ms"

kill_and_resume buildings "$work/killed.tif" 6 300 "$full_ms" strips \
  "$rsi" buildings "$image" -o "$work/killed.tif" "${opts[@]}"
cmp "$work/full.tif" "$work/killed.tif" || fail "after $kills kill -9 and --resume the mask differs from the uninterrupted run"
echo "$me: $kills x kill -9 + --resume == uninterrupted (byte-identical)"

# SIGTERM: a clean stop (exit 143) that keeps the journal, then a resume.
"$rsi" buildings "$image" -o "$work/term.tif" "${opts[@]}" --resume &
pid=$!
sleep "$(echo "scale=3; ($full_ms / 2) / 1000" | bc)"
kill -TERM "$pid" 2>/dev/null || true
rc=0
wait "$pid" || rc=$?
if [ -f "$work/term.tif" ]; then
  echo "$me: note: the run finished before SIGTERM arrived"
else
  [ "$rc" -eq 143 ] || fail "SIGTERM: exit code $rc, expected 143"
  [ -s "$work/term.tif.parts/shard-0-of-1.journal" ] || fail "SIGTERM: no journal kept"
  "$rsi" buildings "$image" -o "$work/term.tif" "${opts[@]}" --resume || fail "resume after SIGTERM failed"
fi
cmp "$work/full.tif" "$work/term.tif" || fail "after SIGTERM and --resume the mask differs"
echo "$me: SIGTERM (exit 143) + --resume == uninterrupted"

# With polygons and a probability raster (outputs held under temporary names until the polygons are
# written, polygon scratch files beside them): the same outputs, and nothing left once done. Same file
# names in two folders (the GeoPackage's layer is named after its file).
mkdir -p "$work/vfull" "$work/vkill"
"$rsi" buildings "$image" -o "$work/vfull/v.tif" --probabilities "$work/vfull/v_p.tif" --vector "$work/vfull/v.gpkg" "${opts[@]}" \
  || fail "uninterrupted run with polygons failed"
kill_and_resume polygons "$work/vkill/v.tif" 3 300 "$full_ms" strips \
  "$rsi" buildings "$image" -o "$work/vkill/v.tif" --probabilities "$work/vkill/v_p.tif" --vector "$work/vkill/v.gpkg" "${opts[@]}"
for f in v.tif v_p.tif v.gpkg; do
  cmp "$work/vfull/$f" "$work/vkill/$f" || fail "polygons: after $kills kill -9 and --resume $f differs"
done
echo "$me: polygons: $kills x kill -9 + --resume == uninterrupted (mask, probabilities, GeoPackage)"

# The scene map (real NAIP image, lattice rows journaled): kill -9 at random moments, then --resume.
naip=$2/naip/m_4709963_se_14_1_20190904.tif
[ -f "$naip" ] || fail "real test data missing: $naip"
scene_opts=(--stride 16 --batch 2 --threads 2 --no-manifest --quiet)
t0=$(date +%s.%N)
"$rsi" scene "$naip" -o "$work/scene_full.tif" --csv "$work/scene_full.csv" "${scene_opts[@]}" || fail "uninterrupted scene run failed"
t1=$(date +%s.%N)
scene_ms=$(echo "($t1 - $t0) * 1000 / 1" | bc)
kill_and_resume scene "$work/scene.tif" 4 200 "$scene_ms" "lattice rows" \
  "$rsi" scene "$naip" -o "$work/scene.tif" --csv "$work/scene.csv" "${scene_opts[@]}"
cmp "$work/scene_full.tif" "$work/scene.tif" || fail "scene: after $kills kill -9 and --resume the lattice differs"
cmp "$work/scene_full.csv" "$work/scene.csv" || fail "scene: after $kills kill -9 and --resume the CSV differs"
echo "$me: scene: $kills x kill -9 + --resume == uninterrupted (lattice and CSV byte-identical)"

# Nothing left behind: no temporary files, and a run that completes removes its parts folder. (A kill
# landing between renaming the output into place and removing the parts can leave killed.tif.parts.)
leftovers=$(find "$work" -name '.rsi-tmp-*' | head -5)
[ -z "$leftovers" ] || fail "left behind: $leftovers"
[ ! -e "$work/term.tif.parts" ] || fail "the completed run left term.tif.parts"
# A resume with different options is refused, naming the problem.
"$rsi" buildings "$image" -o "$work/x.tif" "${opts[@]}" --resume &
pid=$!
for _ in $(seq 100); do  # until the first strip is journaled
  grep -q '"strip"' "$work/x.tif.parts/shard-0-of-1.journal" 2>/dev/null && break
  sleep 0.1
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ -f "$work/x.tif" ]; then
  echo "$me: note: the run finished before it could be interrupted; option check skipped"
else
  rc=0
  err=$("$rsi" buildings "$image" -o "$work/x.tif" --tile-size 256 --overlap 32 --no-manifest --quiet --resume 2>&1) || rc=$?
  [ "$rc" -eq 2 ] || fail "a resume with another tile size: exit $rc, expected 2 ($err)"
  case "$err" in *"parts of another job"*) ;; *) fail "unexpected message: $err" ;; esac
  echo "$me: resume with different options refused: $err"
fi
echo "$me: PASS"
