#!/usr/bin/env bash
# Every multi-GPU check in one call of a 4-GPU host (the device tool's calls are short and device time is scarce),
# from the repository root with the bundle of tools/make-bundle.sh at dist/facm-bundle (unpacked):
#   phase 1, side by side (about 3 minutes):
#     GPUs 0,1  tools/gpu-dp-check.sh match, hosts, kill (issue 8: --gpus 2 vs 1 GPU, two "hosts" over loopback, a
#               killed worker and --resume)
#     GPU 2     EXTRA_GPU2 (a script taking an output folder, e.g. a new user's porting steps), then Nsight Compute on
#               the main forward kernels through `port-check --only` (achieved DRAM bytes and time per kernel)
#     GPU 3     the GPU test suite (run-gpu-suite.sh)
#   phase 2: tools/gpu-dp-scaling.sh on all GPUs (issue 10: loss check at 4 ranks, XL/1 FACM bf16 per-GPU batch 16
#            and 32 on 1, 2, 4 GPUs)
# Usage: bash tools/gpu-multi-check.sh OUTDIR [SCALING_DEADLINE_S]     (env EXTRA_GPU2=path/to/script.sh; TOTAL_S, the
#        seconds the whole run may take, default 560: phase 2 gets what phase 1 left of it)
set -u
out=${1:?output folder}; scaling_deadline=${2:-330}
root=$(cd "$(dirname "$0")/.." && pwd)
bundle="$root/dist/facm-bundle"
java=("$bundle/runtime/bin/java" --enable-native-access=ALL-UNNAMED -cp "$bundle/facm-engine.jar:$root/src/main/resources"
      facm.cli.Main)
mkdir -p "$out"; export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
t0=$SECONDS
nvidia-smi -L | tee "$out/gpus.txt"

(
  export CUDA_VISIBLE_DEVICES=0,1
  for s in match hosts kill; do timeout 120 bash "$root/tools/gpu-dp-check.sh" "$s" "$out/dp"; done
) > "$out/dp-check.log" 2>&1 &
dp=$!
(
  export CUDA_VISIBLE_DEVICES=2
  if [ -n "${EXTRA_GPU2:-}" ]; then timeout 150 bash "$EXTRA_GPU2" "$out/extra"; echo "extra script: exit $?"; fi
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -n "$ncu" ]; then
    timeout 120 "$ncu" --clock-control none --target-processes all --csv \
      -k 'regex:attention_fwd_bf16|rmsnorm_fwd|swiglu_fwd|gated_residual_fwd|qk_norm_rope_fwd' -c 80 \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed \
      "${java[@]}" port-check --only 'attention.fwd|rmsnorm.fwd|swiglu.fwd|gated_residual.fwd|qk_norm_rope.fwd' --reps 2 \
      > "$out/ncu.csv" 2> "$out/ncu.err"
    echo "ncu: exit $? ($(grep -c '"gpu__time_duration.sum"' "$out/ncu.csv") kernel metric rows)"
  else
    echo "ncu: not found"
  fi
) > "$out/gpu2.log" 2>&1 &
g2=$!
CUDA_VISIBLE_DEVICES=3 bash "$bundle/run-gpu-suite.sh" --deadline 200 "$out/suite" > "$out/suite.log" 2>&1
echo "suite: $(grep -E '^gpu tests' "$out/suite.log")"; grep -E "FAILED|RESULT" "$out/suite.log" | head -8
wait $dp; wait $g2
echo "--- dp checks"; grep -E "PASS|FAIL|exit|kill:|hosts" "$out/dp-check.log" | head -20
echo "--- GPU 2"; cat "$out/gpu2.log"
echo "phase 1: $((SECONDS - t0)) s"

left=$(( ${TOTAL_S:-560} - (SECONDS - t0) - 15 ))   # the whole call must end inside the device tool's 10 minutes
[ "$left" -lt "$scaling_deadline" ] && scaling_deadline=$left
echo "scaling deadline: $scaling_deadline s"
DEADLINE_S=$scaling_deadline bash "$root/tools/gpu-dp-scaling.sh" "$out/scaling" > "$out/scaling.log" 2>&1
echo "--- scaling"; sed -n '/^host:/,$p' "$out/scaling/summary.md" 2>/dev/null || tail -20 "$out/scaling.log"
echo "all: $((SECONDS - t0)) s"
