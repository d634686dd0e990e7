#!/usr/bin/env bash
# The performance issue's side-by-side run on a GPU host: for each piece of work, our JMH benchmark and then the
# PyTorch reference on the same card right after, then the ratio table (tools/reference/compare_bench.py).
# Run from the repository root with the bundle of tools/make-bundle.sh at dist/facm-bundle (the GPU hosts have no
# Java and no Maven: the bundle's jlinked runtime runs benchmarks.jar).
#
# Usage: bash tools/compare-torch.sh OUTDIR [--quick] [--part all|sampling|step|kernels] [--deadline S]
#                                    [--step-compile auto|model|modules] [--step-batches LIST] [--bundle DIR]
#   OUTDIR        everything goes there: jmh_<part>.json/.log, torch_<part>.json/.log, compare.md, compare.json
#   --quick       fewer repetitions (JMH 1 warm-up + 2 measurement iterations, PyTorch 5 repeats / 3 steps), NFE 1 only
#                 and no kernel benchmarks: a check that everything runs, not numbers to publish
#   --part P      only one part (default all, in this order): sampling (card rate, XL/1 b256 bf16 NFE 1 and 2),
#                 step (FACM step XL/1 b16 and b32), kernels (attention fwd/bwd/jvp at B32·H16·T256·dh72, F32 and
#                 BF16; RMSNorm+modulate at 256x256x1152); run the parts in separate calls when one call's time is short,
#                 into the same OUTDIR: the table is built from every JSON file found there
#   --deadline S  finish within S seconds, table included (default 540): each stage gets at most what is left
#   --step-compile  torch.compile strategy of the PyTorch FACM step (see facm_step_bench.py; default auto)
#   --step-batches  batch sizes of the step part, ours and PyTorch (default 16,32; e.g. 32 alone gives torch.compile
#                 of the XL/1 step, which takes minutes per batch size, the time of one call)
# The table alone, later or elsewhere: python3 tools/reference/compare_bench.py --compare OUTDIR
set -uo pipefail

out_arg=""; quick=0; part=all; deadline=540; step_compile=auto; step_batches=16,32; bundle=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --part) part="$2"; shift ;;
    --deadline) deadline="$2"; shift ;;
    --step-compile) step_compile="$2"; shift ;;
    --step-batches) step_batches="$2"; shift ;;
    --bundle) bundle="$2"; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "compare-torch: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) out_arg="$1" ;;
  esac
  shift
done
[ -n "$out_arg" ] || { echo "compare-torch: give an OUTDIR (see --help)" >&2; exit 2; }
case "$part" in all|sampling|step|kernels) ;; *) echo "compare-torch: --part all|sampling|step|kernels, not '$part'" >&2; exit 2 ;; esac

started=$SECONDS
root=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$bundle" ] || bundle="$root/dist/facm-bundle"
java="$bundle/runtime/bin/java"
[ -x "$java" ] || chmod u+x "$bundle"/runtime/bin/* "$bundle/runtime/lib/jspawnhelper" 2>/dev/null
[ -x "$java" ] && [ -f "$bundle/benchmarks.jar" ] \
  || { echo "compare-torch: no bundle with benchmarks.jar at $bundle: run tools/make-bundle.sh (without --no-bench)" >&2; exit 2; }
reference="$root/tools/reference"
[ -f "$reference/torch_perf_bench.py" ] || reference="$bundle/reference"
mkdir -p "$out_arg" || exit 2
out=$(cd "$out_arg" && pwd)
export PYTHONUNBUFFERED=1
# torch.compile starts cold on every fresh host; a private cache keeps a reused machine honest too.
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d /tmp/facm-inductor.XXXXXX); export TORCHINDUCTOR_CACHE_DIR
trap 'rm -rf "$TORCHINDUCTOR_CACHE_DIR"' EXIT

if [ "$quick" = 1 ]; then
  jmh_iters=(-wi 1 -i 2); nfe=1; repeats=(--warmup 2 --repeats 5); steps=(--steps 3 --step-warmup 1)
else
  jmh_iters=(-wi 2 -i 3); nfe=1,2; repeats=(--warmup 3 --repeats 10); steps=(--steps 6 --step-warmup 2)
fi
jmh_common=(-f 1 "${jmh_iters[@]}" -foe false -prof facm.bench.GpuTimeProfiler)
failed=0

# Seconds a stage may run: its cap, but never past the deadline (20 s kept for the table).
budget() {
  local cap=$1 left=$((deadline - (SECONDS - started) - 20))
  [ "$left" -lt "$cap" ] && cap=$left
  echo "$cap"
}

# stage NAME CAP LOG CMD...: runs CMD under a timeout, output to the terminal and LOG.
stage() {
  local name=$1 cap; cap=$(budget "$2"); local log=$3; shift 3
  echo; echo "==> $name (at most ${cap}s)"
  if [ "$cap" -lt 15 ]; then
    echo "compare-torch: no time left for $name before the ${deadline}s deadline" | tee "$log"; failed=1; return
  fi
  timeout --kill-after=10 "$cap" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "compare-torch: $name stopped after ${cap}s (timeout); what it wrote so far is kept" | tee -a "$log"; failed=1
  elif [ "$rc" != 0 ]; then
    echo "compare-torch: $name exited with $rc (see $log)" | tee -a "$log"; failed=1
  fi
}

# Our benchmarks: "${jmh[@]}" REGEX PARAMS... "${jmh_common[@]}" -rf json -rff OUTDIR/jmh_PART.json
jmh=("$java" --sun-misc-unsafe-memory-access=allow -cp "$bundle/benchmarks.jar:$bundle/facm-engine.jar" org.openjdk.jmh.Main)

echo "==> GPU"; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 \
  | tee "$out/nvidia-smi.txt"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
sed -n '1,3p' "$bundle/BUNDLE.txt" 2>/dev/null | tee "$out/bundle.txt"

if [ "$part" = all ] || [ "$part" = sampling ]; then
  stage "ours: OneStepSampling XL/1 b256 bf16" 90 "$out/jmh_sampling.log" \
    "${jmh[@]}" OneStepSampling -p model=XL/1 -p batch=256 -p precision=bf16 -p nfe=$nfe -w 2s -r 2s \
    "${jmh_common[@]}" -rf json -rff "$out/jmh_sampling.json"
  stage "PyTorch: card rate, sampling XL/1 b256 bf16 eager + compile" 200 "$out/torch_sampling.log" \
    python3 "$reference/torch_perf_bench.py" --only card,sampling --models XL/1 --batches 256 --nfe $nfe \
    --modes eager,compile "${repeats[@]}" --json "$out/torch_sampling.json"
fi
if [ "$part" = all ] || [ "$part" = step ]; then
  stage "ours: FacmTrainStep XL/1 b$step_batches bf16, host and CUDA-graph step" 200 "$out/jmh_step.log" \
    "${jmh[@]}" FacmTrainStep -p model=XL/1 -p batch=$step_batches -p precision=bf16 -p step=host,graph -w 3s -r 3s \
    "${jmh_common[@]}" -rf json -rff "$out/jmh_step.json"
  stage "PyTorch: FACM step XL/1 b$step_batches eager + compile" 480 "$out/torch_step.log" \
    python3 "$reference/torch_perf_bench.py" --only step --step-models XL/1 --step-batches "$step_batches" \
    --modes eager,compile --compile-strategy "$step_compile" "${steps[@]}" --json "$out/torch_step.json"
fi
if { [ "$part" = all ] && [ "$quick" = 0 ]; } || [ "$part" = kernels ]; then
  stage "ours: attention fwd/bwd/jvp B32·H16·T256·dh72" 90 "$out/jmh_attention.log" \
    "${jmh[@]}" AttentionBenchmark -p shape=32x16x256x72 -p dtype=F32,BF16 -w 1s -r 1s \
    "${jmh_common[@]}" -rf json -rff "$out/jmh_attention.json"
  stage "ours: RMSNorm+modulate 256x256x1152" 40 "$out/jmh_rmsnorm.log" \
    "${jmh[@]}" RmsNormModulateBenchmark -p shape=256x256x1152 -p dtype=F32,BF16 -w 1s -r 1s \
    "${jmh_common[@]}" -rf json -rff "$out/jmh_rmsnorm.json"
  if [ ! -f "$out/torch_sampling.json" ] && [ ! -f "$out/torch_card.json" ]; then
    stage "PyTorch: card rate and copy bandwidth" 60 "$out/torch_card.log" \
      python3 "$reference/torch_perf_bench.py" --only card --json "$out/torch_card.json"
  fi
fi

{
  echo; echo "======================== ours vs PyTorch ($(date -u +%Y-%m-%dT%H:%M:%SZ)) ========================"
  python3 "$reference/compare_bench.py" --compare "$out" --gpu "${gpu:-unknown}"
  echo "outputs: $out   elapsed: $((SECONDS - started)) s$([ "$failed" = 1 ] && echo '   (some stage failed or timed out: see its log)')"
} | tee "$out/summary.txt"
exit "$failed"
