#!/usr/bin/env bash
# Installs exactly the Debian 12 packages rsi needs that are missing. Idempotent, and fast (no apt
# call at all) when everything is present. Run as root on a fresh Debian 12 machine.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache git file time bc
  libgdal-dev gdal-bin libproj-dev
  libopencv-dev
  libtorch-dev libopenblas0-pthread
  libssl-dev libcli11-dev googletest libgtest-dev nlohmann-json3-dev libgeos-dev
  python3 python3-numpy python3-torch python3-torchvision python3-gdal python3-rasterio python3-matplotlib python3-sklearn
  clang
  nginx-light slurm-wlm munge
)

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
echo "setup: done"
