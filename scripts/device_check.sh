#!/usr/bin/env bash
# The model runtime's GPU check, for a session lent a GPU machine (/work/.library/device): that
# machine has a CUDA LibTorch (inside its Python torch), CMake, ninja and a compiler, but neither
# Debian's packages nor a network. So the runtime is built there alone (RSI_MODEL_RUNTIME_ONLY) and
# tests/models/device/device_check.cpp runs the bundled models on cuda:0 against the CPU.
#
#   bash scripts/device_check.sh prepare   # here: copies the headers and libcrypto it needs into .device/
#   then the device tool's run, with carry [".device"] and a timeout of ~480 s:
#   bash scripts/device_check.sh run       # there: configure, build, run; results in $OUT
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

case "${1:-}" in
prepare)
    # nlohmann/json (header-only) and OpenSSL's headers + libcrypto (weights' SHA-256) from this
    # Debian machine; .device/ is ignored by git and travels with the tool's `carry`.
    grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
    rm -rf .device && mkdir -p .device/include .device/lib
    cp -r /usr/include/nlohmann .device/include/
    cp -r /usr/include/openssl .device/include/
    cp /usr/include/x86_64-linux-gnu/openssl/*.h .device/include/openssl/
    cp -L /usr/lib/x86_64-linux-gnu/libcrypto.so.3 .device/lib/
    du -sh .device
    ;;
run)
    out="${OUT:-/tmp/rsi-device-out}"
    mkdir -p "$out"
    build=/tmp/rsi-device-build
    exec > >(tee "$out/device_check.log") 2>&1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    # DEVICE=cpu exercises this script where no GPU is (Debian's LibTorch: TORCH_CMAKE=/usr/lib/x86_64-linux-gnu/cmake).
    device="${DEVICE:-cuda:0}"
    torch_cmake="${TORCH_CMAKE:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}"
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' || true
    # libcrypto.so.3 is loaded from .device/lib when the machine has none of its own.
    export LD_LIBRARY_PATH="$root/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # LibTorch's CMake config looks for the CUDA toolkit; name the compiler and the H200's architecture.
    export TORCH_CUDA_ARCH_LIST=9.0
    cuda_compiler=()
    if command -v nvcc > /dev/null; then cuda_compiler=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc)"); fi
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRSI_MODEL_RUNTIME_ONLY=ON "${cuda_compiler[@]}" \
        -DCMAKE_PREFIX_PATH="$torch_cmake" -DRSI_NLOHMANN_INCLUDE="$root/.device/include" \
        -DOPENSSL_INCLUDE_DIR="$root/.device/include" -DOPENSSL_CRYPTO_LIBRARY="$root/.device/lib/libcrypto.so.3" \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0
    if [ "$device" != cpu ]; then
        grep -q 'RSI_C10_CUDA:FILEPATH=.*c10_cuda' "$build/CMakeCache.txt" || { echo "LibTorch has no c10_cuda"; exit 1; }
    fi
    cmake --build "$build" -j "$(nproc)"
    status=0
    "$build/tests/models/device/rsi_device_check" --device "$device" --models data/models \
        --json "$out/device_check.json" --threads "$(nproc)" > /dev/null || status=$?
    echo "rsi_device_check exit status $status"
    exit "$status"
    ;;
*)
    echo "usage: bash scripts/device_check.sh prepare|run" >&2
    exit 2
    ;;
esac
