#!/usr/bin/env bash
# Builds the perf harness (kernels/rope.cu, residual_norm.cu, adaln.cu, rmsnorm.cu + harness.cu, cudart static) and,
# unless --build-only, runs it: one table of the branch's new forward kernels beside the ones they replace, at XL/1
# batch 16 and 256 (correctness vs a float64 host reference, median time, fraction of the memory floor).
# usage: tools/perf-harness/run.sh [--build-only] [out-dir]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
build_only=0
[[ "${1:-}" == "--build-only" ]] && { build_only=1; shift; }
out="${1:-$here/build}"
mkdir -p "$out"
# Same numerics flags as native/build-kernels.sh; sm_80 and sm_90 SASS. -Xcompiler -O2: the float64 host reference
# at batch 256 (226 M qkv elements) must not dominate the run.
"$NVCC" -std=c++17 -O3 -Xcompiler -O2 -lineinfo -ftz=false -prec-div=true -prec-sqrt=true -fmad=true \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
    -Xptxas -v -cudart static -o "$out/perf-harness" "$here/harness.cu" > "$out/ptxas.log" 2>&1 \
    || { cat "$out/ptxas.log"; exit 1; }
if grep -E '[1-9][0-9]* bytes spill' "$out/ptxas.log"; then echo "WARNING: register spills (see $out/ptxas.log)"; fi
[[ $build_only == 1 ]] && exit 0
"$out/perf-harness"
