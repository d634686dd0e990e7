#!/usr/bin/env bash
# Builds the attention harness (kernels/attention_tc*.cu + harness.cu, cudart static) and, unless --build-only, runs it.
# usage: tools/attention-harness/run.sh [--build-only] [--quick] [out-dir]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
build_only=0; quick=""
[[ "${1:-}" == "--build-only" ]] && { build_only=1; shift; }
[[ "${1:-}" == "--quick" ]] && { quick="--quick"; shift; }
out="${1:-$here/build}"
mkdir -p "$out"
# Same numerics flags as native/build-kernels.sh; sm_80 and sm_90 SASS.
"$NVCC" -std=c++17 -O3 -lineinfo -ftz=false -prec-div=true -prec-sqrt=true -fmad=true \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
    -Xptxas -v -cudart static -o "$out/attention-harness" "$here/harness.cu" > "$out/ptxas.log" 2>&1 \
    || { cat "$out/ptxas.log"; exit 1; }
if grep -E '[1-9][0-9]* bytes spill' "$out/ptxas.log"; then echo "WARNING: register spills (see $out/ptxas.log)"; fi
# The forward's alternative tiling (64 keys per tile for dh <= 80, see kernels/attention_tc.cu), for timing only.
"$NVCC" -std=c++17 -O3 -lineinfo -ftz=false -prec-div=true -prec-sqrt=true -fmad=true -DTC_FWD_BK_SMALL_DH=64 \
    -gencode arch=compute_90,code=sm_90 -cudart static -o "$out/attention-harness-bk64" "$here/harness.cu"
[[ $build_only == 1 ]] && exit 0
"$out/attention-harness" $quick
echo "--- forward with 64-key tiles (dh <= 80):"
"$out/attention-harness-bk64" --quick | grep TIME
