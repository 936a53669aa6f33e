#!/usr/bin/env bash
# Quick start, command 1: install, build, and run the main job on bundled defaults.
# Outputs go to out/quickstart/. IMAGE defaults to the SpaceNet Las Vegas scene in ../shared/data.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/build.sh"
image="${1:-$root/../shared/data/spacenet/vegas_rgb.tif}"
out="$root/out/quickstart"
mkdir -p "$out"
rsi="$root/build/cli/rsi"
"$rsi" --version
echo
"$rsi" info "$image" --tile-size 512 --overlap 64
echo
"$rsi" tile "$image" "$out/tiles" --tile-size 512 --overlap 64 --bands 1,2,3 --format PNG --skip-empty --overwrite
echo
echo "outputs: $out"
