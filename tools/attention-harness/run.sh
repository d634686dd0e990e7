#!/usr/bin/env bash
# Builds the attention harness (kernels/attention_tc*.cu + harness.cu, cudart static) and, unless --build-only, runs it:
# correctness of every kernel (the forward new and v1) against float64, then timings; then the forward's alternative
# tilings (TC_FWD_* of kernels/attention_tc.cu), timing lines only, so the defaults can be re-chosen on a new card.
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
flags=(-std=c++17 -O3 -lineinfo -ftz=false -prec-div=true -prec-sqrt=true -fmad=true)
"$NVCC" "${flags[@]}" -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
    -Xptxas -v -cudart static -o "$out/attention-harness" "$here/harness.cu" > "$out/ptxas.log" 2>&1 \
    || { cat "$out/ptxas.log"; exit 1; }
if grep -E '[1-9][0-9]* bytes spill' "$out/ptxas.log"; then echo "WARNING: register spills (see $out/ptxas.log)"; fi
# Alternative forward tilings, sm_90 only, for timing: name and -D flags.
variants=("3-blocks-per-SM -DTC_FWD_MIN_BLOCKS=3" "32-key-tiles -DTC_FWD_BK=32" "8-warps -DTC_FWD_WARPS=8 -DTC_FWD_MIN_BLOCKS=1")
for v in "${variants[@]}"; do
    read -r name defs <<< "$v"
    # shellcheck disable=SC2086
    "$NVCC" "${flags[@]}" $defs -gencode arch=compute_90,code=sm_90 -Xptxas -v -cudart static \
        -o "$out/attention-harness-$name" "$here/harness.cu" > "$out/ptxas-$name.log" 2>&1 \
        || { cat "$out/ptxas-$name.log"; exit 1; }
done
[[ $build_only == 1 ]] && exit 0
"$out/attention-harness" $quick
for v in "${variants[@]}"; do
    read -r name defs <<< "$v"
    echo "--- forward variant $name ($defs; spills: $(grep -cE '[1-9][0-9]* bytes spill' "$out/ptxas-$name.log" || true) kernels):"
    "$out/attention-harness-$name" --quick | grep -E '^FWD|failures'
done
