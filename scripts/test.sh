#!/usr/bin/env bash
# Quick start, command 2: install, build and run the whole test suite (ctest).
# Extra arguments go to ctest, e.g. `scripts/test.sh -L unit`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/build.sh"
cd "$root/build"
ctest -j "$(nproc)" --output-on-failure --timeout 900 "$@"
