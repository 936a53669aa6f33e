#!/usr/bin/env bash
# Where does `rsi tile` spend its time? perf with DWARF call graphs on one generated image.
#
#   bench/profile_tile.sh [SIZE]        # default 16000; needs perf (linux-perf); ~1 min
#
# Writes perf data under /tmp/rsi-bench/profile and prints a breakdown by caller and by leaf
# activity (bench/perf_breakdown.py). Findings are summarised in docs/BENCHMARKS.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
SIZE="${1:-16000}"
WORKDIR="${RSI_BENCH_DIR:-/tmp/rsi-bench}"
RSI="${RSI:-}"
if [ -z "$RSI" ]; then
  for c in "$REPO/build-bench/cli/rsi" "$REPO/build/cli/rsi"; do [ -x "$c" ] && { RSI="$c"; break; }; done
fi
[ -n "$RSI" ] || { echo "profile_tile.sh: rsi binary not found (set RSI=...)" >&2; exit 1; }
command -v perf >/dev/null || { echo "profile_tile.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }

img=$(/usr/bin/python3 "$HERE/make_image.py" --outdir "$WORKDIR" "$SIZE")
P="$WORKDIR/profile"
rm -rf "$P"; mkdir -p "$P"
cat "$img" > /dev/null
sync
perf record -q -F 400 --call-graph dwarf,16384 -o "$P/perf.data" "$RSI" tile "$img" "$P/tiles" -q >/dev/null
rm -rf "$P/tiles"
perf script -i "$P/perf.data" -F ip,sym 2>/dev/null > "$P/stacks.txt"
/usr/bin/python3 "$HERE/perf_breakdown.py" "$P/stacks.txt" \
  _start main rsi::export_tiles "rsi::(anonymous namespace)::TileWriter::write" GDALDriver::Create \
  rsi::close_written rsi::RasterSource::read _dl_init
