#!/usr/bin/env bash
# Quick start, command 1: install, build, and run the main jobs on bundled defaults.
# Outputs go to out/quickstart/. Images default to the sample scenes in ../shared/data.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/build.sh"
data="$root/../shared/data"
image="${1:-$data/spacenet/vegas_rgb.tif}"
scene_image="${2:-$data/naip/m_4709963_se_14_1_20190904.tif}"
out="$root/out/quickstart"
mkdir -p "$out"
rsi="$root/build/cli/rsi"
"$rsi" --version
echo
"$rsi" model list
echo
"$rsi" info "$image"
echo
echo "== building map: $image"
"$rsi" buildings "$image" -o "$out/buildings.tif" --probabilities "$out/buildings_probability.tif" \
  --vector "$out/buildings.gpkg" --min-area 10 --regularize --overwrite
echo
echo "== scene map: $scene_image"
"$rsi" scene "$scene_image" -o "$out/scene.tif" --csv "$out/scene.csv" --vector "$out/scene.gpkg" \
  --probabilities "$out/scene_probabilities.tif" --overwrite
echo
echo "== tiles"
"$rsi" tile "$image" "$out/tiles" --tile-size 512 --overlap 64 --bands 1,2,3 --format PNG --skip-empty --overwrite -q
echo
echo "outputs in $out:"
ls -1 "$out"
