#!/usr/bin/env bash
# Issue 10 (and issue 8's scaling numbers) on a 4- or 8-GPU host, from the repository root, with the bundle of
# tools/make-bundle.sh carried along (dist/facm-bundle). Needs python3 with numpy + safetensors and libnccl.so.2.
#   1. loss check at 4 ranks: 1 GPU x batch 64 vs --gpus 4 x 16 (fp32, model small, Fashion-MNIST, 10 steps)
#   2. XL/1 FACM step, bf16, synthetic 32x16x16 latents, per-GPU batch 16 and 32 on 1, 2, 4 (and 8) GPUs:
#      WARMUP steps, then TIMED steps, every step logged; from the engine's own metrics.jsonl: samples/s over the
#      timed steps, efficiency vs 1 GPU, the largest peak_mem_gib of any rank (peak_mem_gib_rank<r>), allreduce_ms
#      and allreduce_exposed_ms (means over the timed steps). SHARD=1 adds --shard-optimizer to the multi-GPU runs.
# A deadline (DEADLINE_S, default 500 s) skips the runs that would not fit; each run has its own timeout.
# NCCL_NVLS_ENABLE=0 always (the engine sets it too): no NVLink multicast.
# Usage: bash tools/gpu-dp-scaling.sh OUTDIR [WARMUP] [TIMED]
set -u
out=${1:?output folder}; warmup=${2:-3}; timed=${3:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
bundle="$root/dist/facm-bundle"
facm=("$bundle/runtime/bin/java" --enable-native-access=ALL-UNNAMED -cp "$bundle/facm-engine.jar:$root/src/main/resources" facm.cli.Main)
mkdir -p "$out"; export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
summary="$out/summary.md"; : > "$summary"
start=$(date +%s); deadline=${DEADLINE_S:-500}
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
left() { echo $((deadline - ($(date +%s) - start))); }
echo "host: $(hostname), $ngpu x $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" | tee -a "$summary"

# ---- 1. same-batch loss check at 4 ranks
common=(--objective fm --model small --data fashion-mnist --batch 64 --precision fp32 --seed 7 --steps 10
        --log-every 1 --ckpt-every 0 --sample-every 0 --ema none)
if [ "$ngpu" -ge 4 ]; then
  rm -rf "$out/one" "$out/four"
  timeout 150 "${facm[@]}" train "${common[@]}" --device cuda --out "$out/one" > "$out/one.log" 2>&1; echo "1 GPU: exit $?"
  timeout 150 "${facm[@]}" train "${common[@]}" --gpus 4 --out "$out/four" > "$out/four.log" 2>&1; echo "--gpus 4: exit $?"
  python3 - "$out/one/metrics.jsonl" "$out/four/metrics.jsonl" 1e-3 <<'PY' | tee -a "$summary"
import json, sys
a, b, rtol = sys.argv[1], sys.argv[2], float(sys.argv[3])
try:
    la = [json.loads(l)['loss'] for l in open(a)]; lb = [json.loads(l)['loss'] for l in open(b)]
    worst = max(abs(x - y) / abs(x) for x, y in zip(la, lb)) if la and len(la) == len(lb) else float('inf')
    print(f"loss check: --gpus 4 x B/4 vs 1 GPU x B (fp32, {len(lb)} steps): max rel diff {worst:.2e} "
          f"(tolerance {rtol:g}) -> {'PASS' if worst <= rtol else 'FAIL'}")
except Exception as e:
    print(f"loss check: failed ({e}); see one.log / four.log")
PY
else
  echo "loss check at 4 ranks: skipped, $ngpu GPU(s) here" | tee -a "$summary"
fi

# ---- 2. XL/1 scaling
python3 - "$out/latents" <<'PY'
import numpy as np, sys, os
from safetensors.numpy import save_file
d = sys.argv[1]; os.makedirs(d, exist_ok=True); rng = np.random.default_rng(0); n = 1024
lat = rng.standard_normal((n, 32, 16, 16), dtype=np.float32)
labels = rng.integers(0, 1000, n).astype(np.int64); labels[0] = 999
save_file({"latents": lat, "latents_flip": lat[..., ::-1].copy(), "labels": labels},
          os.path.join(d, "latents_rank00_shard000.safetensors"))
save_file({"mean": np.zeros((1, 32, 1, 1), np.float32), "std": np.ones((1, 32, 1, 1), np.float32)},
          os.path.join(d, "latents_stats.safetensors"))
PY
counts="1 2 4"; [ "$ngpu" -ge 8 ] && counts="1 2 4 8"
{ echo; echo "| GPUs | per-GPU batch | global batch | samples/s | efficiency vs 1 GPU | peak GiB (max rank) | allreduce ms | exposed allreduce ms |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"; } > "$out/table.md"
steps=$((warmup + timed))
for per in 16 32; do
  for g in $counts; do
    [ "$g" -gt "$ngpu" ] && continue
    run="$out/xl-g$g-b$per"; rm -rf "$run"; batch=$((per * g))
    if [ "$(left)" -lt 60 ]; then echo "| $g | $per | $batch | skipped: deadline | | | | |" >> "$out/table.md"; continue; fi
    extra=(--device cuda); [ "$g" -gt 1 ] && extra=(--gpus "$g")
    [ "$g" -gt 1 ] && [ "${SHARD:-0}" = 1 ] && extra+=(--shard-optimizer)
    t=$(left); [ "$t" -gt 150 ] && t=150
    timeout "$t" "${facm[@]}" train --objective facm --model XL/1 --data "$out/latents" --precision bf16 \
      --batch $batch --steps $steps --log-every 1 --ckpt-every 0 --sample-every 0 --ema none "${extra[@]}" \
      --out "$run" > "$run.log" 2>&1
    code=$?; rm -rf "$run/checkpoints"
    python3 - "$run/metrics.jsonl" $g $per $batch $code $warmup "$out/xl-g1-b$per/metrics.jsonl" <<'PY' >> "$out/table.md"
import json, sys
path, g, per, batch, code, warm, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]), sys.argv[7]
def timed(p):
    try: lines = [json.loads(l) for l in open(p)]
    except Exception: return None
    lines = [l for l in lines if l.get('step', 0) > warm]
    if not lines: return None
    secs = sum(batch / l['samples_per_s'] for l in lines)   # one line per step
    peaks = [v for l in lines for k, v in l.items() if k.startswith('peak_mem_gib')]
    mean = lambda k: sum(l.get(k, 0) for l in lines) / len(lines)
    return dict(sps=len(lines) * batch / secs, peak=max(peaks) if peaks else -1, ar=mean('allreduce_ms'),
                exp=mean('allreduce_exposed_ms'))
m = timed(path)
if m is None: print(f"| {g} | {per} | {batch} | failed (exit {code}, see {path.rsplit('/', 2)[-2]}.log) | | | | |"); sys.exit()
b = timed(base)
eff = "n/a"
if b: eff = f"{100 * (m['sps'] / g) / b['sps']:.1f} %"
print(f"| {g} | {per} | {batch} | {m['sps']:.1f} | {eff} | {m['peak']:.1f} | {m['ar']:.1f} | {m['exp']:.1f} |")
PY
  done
done
cat "$out/table.md" >> "$summary"
echo "elapsed: $(( $(date +%s) - start )) s" | tee -a "$summary"
echo "== summary"; cat "$summary"
