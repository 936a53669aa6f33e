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

t0=$(date +%s.%N)
"$rsi" buildings "$image" -o "$work/full.tif" "${opts[@]}" || fail "uninterrupted run failed"
t1=$(date +%s.%N)
full_ms=$(echo "($t1 - $t0) * 1000 / 1" | bc)
echo "$me: uninterrupted run ${full_ms} ms"

# Interrupt with kill -9 at random moments until a run finishes by itself (at most 6 kills).
kills=0
while [ ! -f "$work/killed.tif" ] && [ $kills -lt 6 ]; do
  "$rsi" buildings "$image" -o "$work/killed.tif" "${opts[@]}" --resume &
  pid=$!
  delay_ms=$((300 + RANDOM % (full_ms * 2 / 3 + 1)))
  sleep "$(echo "scale=3; $delay_ms / 1000" | bc)"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    journaled=$(grep -c '"strip"' "$work/killed.tif.parts/shard-0-of-1.journal" 2>/dev/null || echo 0)
    echo "$me: kill -9 after ${delay_ms} ms ($journaled strips journaled)"
  else
    wait "$pid" || fail "a resumed run failed"
  fi
done
[ -f "$work/killed.tif" ] || "$rsi" buildings "$image" -o "$work/killed.tif" "${opts[@]}" --resume || fail "final resume failed"
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

# The scene map (real NAIP image, lattice rows journaled): kill -9 at random moments, then --resume.
naip=$2/naip/m_4709963_se_14_1_20190904.tif
[ -f "$naip" ] || fail "real test data missing: $naip"
scene_opts=(--stride 16 --batch 2 --threads 2 --no-manifest --quiet)
t0=$(date +%s.%N)
"$rsi" scene "$naip" -o "$work/scene_full.tif" --csv "$work/scene_full.csv" "${scene_opts[@]}" || fail "uninterrupted scene run failed"
t1=$(date +%s.%N)
scene_ms=$(echo "($t1 - $t0) * 1000 / 1" | bc)
kills=0
while [ ! -f "$work/scene.tif" ] && [ $kills -lt 4 ]; do
  "$rsi" scene "$naip" -o "$work/scene.tif" --csv "$work/scene.csv" "${scene_opts[@]}" --resume &
  pid=$!
  delay_ms=$((200 + RANDOM % (scene_ms * 2 / 3 + 1)))
  sleep "$(echo "scale=3; $delay_ms / 1000" | bc)"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    journaled=$(grep -c '"strip"' "$work/scene.tif.parts/shard-0-of-1.journal" 2>/dev/null || echo 0)
    echo "$me: scene: kill -9 after ${delay_ms} ms ($journaled lattice rows journaled)"
  else
    wait "$pid" || fail "a resumed scene run failed"
  fi
done
[ -f "$work/scene.tif" ] || "$rsi" scene "$naip" -o "$work/scene.tif" --csv "$work/scene.csv" "${scene_opts[@]}" --resume ||
  fail "final scene resume failed"
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
