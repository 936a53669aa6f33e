#!/usr/bin/env bash
# Fuzzing (issue #8, docs/RELIABILITY.md): builds the libFuzzer targets of tests/fuzz with clang in
# build-fuzz/ (ASan + UBSan, torch off), replays the recorded crash reproducers, then fuzzes each
# target for N seconds on a temporary copy of its seed corpus (the repository is never modified).
# Exits non-zero on any crash, sanitizer report, leak, timeout or out-of-memory.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 10 s, every target)
#
# Environment: RSI_FUZZ_JOBS    build jobs (default: nproc)
#              RSI_FUZZ_KEEP=D  keep the grown corpora, logs and crash files in D (default: a temp
#                               dir, removed on success; on failure the artifacts are copied to
#                               build-fuzz/artifacts/)
# Per-target libFuzzer flags: tests/fuzz/<target>.options (one line, e.g. -max_len=4096);
# dictionary: tests/fuzz/<target>.dict.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-10}"
[ $# -gt 0 ] && shift
build="$root/build-fuzz"
fuzzdir="$root/tests/fuzz"
jobs="${RSI_FUZZ_JOBS:-$(nproc)}"

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (Debian: apt-get install clang)" >&2
  exit 1
fi

echo "fuzz: building in build-fuzz/ (clang, -fsanitize=fuzzer,address,undefined)"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DRSI_FUZZ=ON -DRSI_WITH_TORCH=OFF -DRSI_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs" --target fuzz

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(grep -v '^$' "$build/tests/fuzz/targets.txt")
fi

work="${RSI_FUZZ_KEEP:-}"
if [ -z "$work" ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/rsi-fuzz.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  flags=(-max_len=256)
  [ -f "$fuzzdir/$t.options" ] && read -r -a flags < "$fuzzdir/$t.options"
  [ -f "$fuzzdir/$t.dict" ] && flags+=("-dict=$fuzzdir/$t.dict")

  # 1. Regression: the recorded reproducers must not crash any more.
  if compgen -G "$fuzzdir/crashes/$t/*" >/dev/null; then
    if ! "$bin" "$fuzzdir/crashes/$t/"* >"$work/$t.replay.log" 2>&1; then
      echo "fuzz: $t: a reproducer in tests/fuzz/crashes/$t/ still fails:" >&2
      tail -n 30 "$work/$t.replay.log" >&2
      failed+=("$t (reproducer)")
      continue
    fi
  fi

  # 2. Fuzz for N seconds on a copy of the seed corpus.
  corpus="$work/corpus/$t"
  mkdir -p "$corpus" "$work/artifacts/$t"
  if [ -d "$fuzzdir/corpus/$t" ]; then cp -r "$fuzzdir/corpus/$t/." "$corpus/"; fi
  if "$bin" "${flags[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/$t/" "$corpus" >"$work/$t.log" 2>&1; then
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")"
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$t.log" | tail -n 1 | sed -E 's/^#[0-9]+[[:space:]]+DONE[[:space:]]+//')"
    echo "fuzz: $t: ok, ${execs:-?} execs in ${seconds}s; $done_line"
  else
    echo "fuzz: $t: FAILED" >&2
    grep -E 'ERROR: |runtime error: |SUMMARY: |Test unit written|deadly signal|uncaught exception|terminate called' \
      "$work/$t.log" | head -n 20 >&2 || true
    tail -n 40 "$work/$t.log" >&2
    mkdir -p "$build/artifacts"
    cp -r "$work/artifacts/$t" "$build/artifacts/" 2>/dev/null || true
    cp "$work/$t.log" "$build/artifacts/" 2>/dev/null || true
    echo "fuzz: $t: reproducer and log in build-fuzz/artifacts/ (replay: build-fuzz/tests/fuzz/$t FILE)" >&2
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean (${seconds}s each)"
