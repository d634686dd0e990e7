#!/usr/bin/env bash
# Compiles every kernels/*.cu into <out>/<name>.fatbin (SASS for each listed architecture plus PTX for the lowest),
# keeps that PTX also as <out>/<name>.ptx (port-check --force-ptx loads it instead of the fatbin) and writes <out>/kernels.properties, which facm.cuda.KernelBuildInfo reads at run time. See native/README.md.
#
# usage: build-kernels.sh <kernels-dir> <out-dir> <archs, e.g. 80,90> [nvcc path | none]
#   nvcc argument empty or missing: look on PATH, then /usr/local/cuda/bin/nvcc, then /usr/local/bin/nvcc.
#   "none": do not build (CPU-only jar). A path that does not exist is not replaced by another nvcc.
# environment:
#   FACM_KERNELS_REQUIRED=1   no usable nvcc is an error instead of a CPU-only build
#   FACM_KERNEL_JOBS=N        parallel nvcc processes (default: number of cores)
#   FACM_KERNEL_BUILD_DIR=D   where the stamp and the per-file ptxas logs go (default: target/kernel-build)
set -euo pipefail

# ------------------------------------------------------------------------------------------------ one file (worker)
# Called by xargs below as: build-kernels.sh --compile-one <name>. Reads the settings exported by the main run.
if [[ "${1:-}" == "--compile-one" ]]; then
    name="$2"
    src="$KDIR/$name.cu"
    out="$OUT/$name.fatbin"
    log="$STATE/$name.log"
    tmp="$OUT/.$name.fatbin.tmp"
    read -r -a gencode <<< "$GENCODE"
    start=$(date +%s.%N)
    # Numerics flags (why no --use_fast_math): the CPU backend is the reference and rounds Java's double-precision
    # Math results to float. Fast math would swap expf/logf/sinf for the approximate SFU versions, flush denormals
    # to zero and use approximate division and square root, giving errors far beyond the few ulp our tests allow.
    # FMA contraction stays on (speed, and it is more accurate); kernels that must round like the CPU's separate
    # multiply and add say so explicitly with __fmul_rn/__fadd_rn.
    # -keep leaves nvcc's intermediate files, among them the PTX for compute_$PTX_ARCH that goes into the fatbin;
    # it is copied next to the fatbin as <name>.ptx (what --force-ptx loads) without a second compile.
    keep="$STATE/keep-$name"
    rm -rf "$keep" && mkdir -p "$keep"
    if ! "$NVCC" -fatbin -std=c++17 -O3 -lineinfo -I"$KDIR" \
            -ftz=false -prec-div=true -prec-sqrt=true -fmad=true \
            -Xptxas -v "${gencode[@]}" -keep -keep-dir "$keep" -o "$tmp" "$src" > "$log" 2>&1; then
        rm -f "$tmp"
        rm -rf "$keep"
        echo "build-kernels: ERROR: nvcc failed on $src:" >&2
        grep -v -E '^ptxas info|^ptxas +info' "$log" >&2 || cat "$log" >&2
        echo "build-kernels: full log: $log" >&2
        exit 1
    fi
    ptx="$keep/$name.compute_$PTX_ARCH.ptx"
    if [[ ! -s "$ptx" ]]; then
        rm -f "$tmp"
        echo "build-kernels: ERROR: nvcc left no $name.compute_$PTX_ARCH.ptx in $keep (files: $(ls "$keep" | tr '\n' ' '))" >&2
        exit 1
    fi
    mv -f "$ptx" "$OUT/.$name.ptx.tmp"
    rm -rf "$keep"
    mv -f "$OUT/.$name.ptx.tmp" "$OUT/$name.ptx"
    mv -f "$tmp" "$out"
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    spills=$(grep -E '[1-9][0-9]* bytes spill (stores|loads)' "$log" | head -3 || true)
    echo "build-kernels: $name.cu -> $name.fatbin ($(stat -c %s "$out") bytes, ${secs} s; resource usage in $log)"
    if [[ -n "$spills" ]]; then
        echo "build-kernels: WARNING: $name.cu spills registers (see $log):"
        echo "$spills" | sed 's/^/    /'
    fi
    exit 0
fi

# ------------------------------------------------------------------------------------------------ arguments
if [[ $# -lt 3 ]]; then
    echo "usage: $0 <kernels-dir> <out-dir> <archs e.g. 80,90> [nvcc path | none]" >&2
    exit 2
fi
KDIR="$(cd "$1" && pwd)"
mkdir -p "$2"
OUT="$(cd "$2" && pwd)"
ARCH_ARG="$3"
NVCC_ARG="${4:-}"
NVCC_ARG="${NVCC_ARG#"${NVCC_ARG%%[![:space:]]*}"}"   # Maven may pass the empty property as spaces
NVCC_ARG="${NVCC_ARG%"${NVCC_ARG##*[![:space:]]}"}"

if [[ -n "${FACM_KERNEL_BUILD_DIR:-}" ]]; then
    STATE="$FACM_KERNEL_BUILD_DIR"
elif [[ "$OUT" == */classes/* ]]; then
    STATE="${OUT%%/classes/*}/kernel-build"      # target/classes/facm/kernels -> target/kernel-build
else
    STATE="$OUT.build"
fi
mkdir -p "$STATE"
PROPS="$OUT/kernels.properties"

# Architectures: digits only, sorted, unique. SASS for each, PTX for the lowest (forward-compatible through the JIT).
ARCHS=()
IFS=', ' read -r -a arch_words <<< "$ARCH_ARG"
for a in "${arch_words[@]}"; do
    [[ -z "$a" ]] && continue
    a="${a#sm_}"; a="${a#compute_}"
    if ! [[ "$a" =~ ^[0-9]{2,3}[a-z]?$ ]]; then
        echo "build-kernels: ERROR: bad architecture '$a' in '$ARCH_ARG' (expected e.g. 80,90)" >&2
        exit 2
    fi
    ARCHS+=("$a")
done
if [[ ${#ARCHS[@]} -eq 0 ]]; then
    echo "build-kernels: ERROR: no architectures given (expected e.g. 80,90)" >&2
    exit 2
fi
mapfile -t ARCHS < <(printf '%s\n' "${ARCHS[@]}" | sort -n -u)
SASS_LIST="$(IFS=,; echo "${ARCHS[*]}")"
PTX_ARCH="${ARCHS[0]}"

mapfile -t MODULES < <(find "$KDIR" -maxdepth 1 -name '*.cu' -printf '%f\n' | sed 's/\.cu$//' | sort)
MODULE_LIST="$(IFS=,; echo "${MODULES[*]}")"

write_props() { # built reason nvcc-line
    local tmp="$PROPS.tmp"
    {
        echo "# written by native/build-kernels.sh"
        echo "built=$1"
        echo "reason=$2"
        echo "nvcc=$3"
        echo "sass=$SASS_LIST"
        echo "ptx=$PTX_ARCH"
        # <name>.ptx files (compute_$PTX_ARCH) next to the fatbins, loaded instead of them by --force-ptx
        if [[ "$1" == true ]]; then echo "ptxfiles=true"; else echo "ptxfiles=false"; fi
        if [[ "$1" == true ]]; then echo "modules=$MODULE_LIST"; else echo "modules="; fi
    } > "$tmp"
    mv -f "$tmp" "$PROPS"
}

not_built() { # reason
    if [[ "${FACM_KERNELS_REQUIRED:-0}" == 1 ]]; then
        echo "build-kernels: ERROR: $1 (FACM_KERNELS_REQUIRED=1)" >&2
        exit 1
    fi
    rm -f "$OUT"/*.fatbin "$OUT"/*.ptx
    write_props false "$1" ""
    echo "build-kernels: WARNING: CUDA kernels not built: $1. The jar runs on the CPU only."
    exit 0
}

# ------------------------------------------------------------------------------------------------ find nvcc
NVCC=""
if [[ "$NVCC_ARG" == none ]]; then
    not_built "nvcc disabled (-Dcuda.nvcc=none)"
elif [[ -n "$NVCC_ARG" ]]; then
    # An explicit choice is used or reported, never silently replaced by another nvcc.
    if [[ -x "$NVCC_ARG" && ! -d "$NVCC_ARG" ]]; then
        NVCC="$NVCC_ARG"
    elif [[ "$NVCC_ARG" != */* ]] && command -v "$NVCC_ARG" > /dev/null 2>&1; then
        NVCC="$(command -v "$NVCC_ARG")"
    else
        not_built "nvcc not found: '$NVCC_ARG' (given by -Dcuda.nvcc) is not an executable file"
    fi
else
    looked=("PATH" "/usr/local/cuda/bin/nvcc" "/usr/local/bin/nvcc")
    if command -v nvcc > /dev/null 2>&1; then
        NVCC="$(command -v nvcc)"
    else
        for c in /usr/local/cuda/bin/nvcc /usr/local/bin/nvcc; do
            if [[ -x "$c" ]]; then NVCC="$c"; break; fi
        done
    fi
    if [[ -z "$NVCC" ]]; then
        not_built "nvcc not found (looked in $(IFS=,; echo "${looked[*]}" | sed 's/,/, /g'))"
    fi
fi
if ! NVCC_VERSION="$("$NVCC" --version 2>&1 | grep -m1 -i 'release')"; then
    not_built "$NVCC does not run or prints no version ($("$NVCC" --version 2>&1 | tail -1))"
fi

# ------------------------------------------------------------------------------------------------ what to rebuild
GENCODE=""
for a in "${ARCHS[@]}"; do GENCODE+=" -gencode arch=compute_$a,code=sm_$a"; done
GENCODE+=" -gencode arch=compute_$PTX_ARCH,code=compute_$PTX_ARCH"

# The stamp changes (and so forces a full rebuild) only when the architectures, the nvcc or this script change.
STAMP="$STATE/build.stamp"
stamp_text="archs=$SASS_LIST ptx=$PTX_ARCH
nvcc=$NVCC $NVCC_VERSION
script=$(cksum < "${BASH_SOURCE[0]}")"
if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$stamp_text" ]]; then
    printf '%s' "$stamp_text" > "$STAMP"
fi
# A fatbin's inputs are its .cu, every shared header and the stamp.
newest_input_other="$STAMP"
for h in "$KDIR"/*.cuh; do
    [[ -e "$h" && "$h" -nt "$newest_input_other" ]] && newest_input_other="$h"
done

TODO=()
for m in "${MODULES[@]}"; do
    f="$OUT/$m.fatbin"
    if [[ ! -f "$f" || ! -f "$OUT/$m.ptx" || "$KDIR/$m.cu" -nt "$f" || "$newest_input_other" -nt "$f" ]]; then
        TODO+=("$m")
    fi
done
# Fatbins of deleted .cu files must not linger in the jar.
for f in "$OUT"/*.fatbin; do
    [[ -e "$f" ]] || continue
    b="$(basename "$f" .fatbin)"
    if [[ ! -f "$KDIR/$b.cu" ]]; then rm -f "$f"; fi
done
for f in "$OUT"/*.ptx; do
    [[ -e "$f" ]] || continue
    b="$(basename "$f" .ptx)"
    if [[ ! -f "$KDIR/$b.cu" ]]; then rm -f "$f"; fi
done

# ------------------------------------------------------------------------------------------------ compile
if [[ ${#TODO[@]} -eq 0 ]]; then
    echo "build-kernels: ${#MODULES[@]} kernel modules up to date (sm_$SASS_LIST, PTX compute_$PTX_ARCH)"
else
    JOBS="${FACM_KERNEL_JOBS:-$(nproc 2> /dev/null || echo 2)}"
    echo "build-kernels: compiling ${#TODO[@]} of ${#MODULES[@]} modules with $NVCC_VERSION" \
         "(SASS sm_$SASS_LIST, PTX compute_$PTX_ARCH, $JOBS parallel)"
    export KDIR OUT STATE NVCC GENCODE PTX_ARCH
    rm -f "$PROPS"   # a failed build must not leave a stale built=true behind
    start=$(date +%s)
    if ! printf '%s\n' "${TODO[@]}" | xargs -P "$JOBS" -I{} bash "${BASH_SOURCE[0]}" --compile-one {}; then
        echo "build-kernels: ERROR: kernel compilation failed (messages above)" >&2
        exit 1
    fi
    echo "build-kernels: done in $(( $(date +%s) - start )) s"
fi
write_props true "" "$NVCC_VERSION"
