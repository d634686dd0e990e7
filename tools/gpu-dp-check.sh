#!/usr/bin/env bash
# Issue 8 (data-parallel training) on a 2-GPU host, from the repository root, with the bundle of tools/make-bundle.sh
# carried along (dist/facm-bundle). Needs python3 with numpy + safetensors (synthetic latents) and libnccl.so.2.
# Stages (first argument; "all" runs them in order):
#   match    1 GPU batch B vs --gpus 2 batch B (fp32, model small, Fashion-MNIST): logged losses agree to 1e-3 rel
#   hosts    the multi-host path: two single-GPU "hosts" (RANK 0/1, LOCAL_RANK 0 and 1, MASTER_ADDR 127.0.0.1)
#            started by hand, NCCL forced onto its socket transport over loopback (P2P/SHM off); same losses
#   kill     --gpus 2, worker rank 1 is SIGKILLed after the first checkpoint: the job must stop with one line naming
#            the rank, and --resume --gpus 2 must continue
#   scale    XL/1 FACM step, bf16, synthetic 32x16x16 latents, per-GPU batch 16 and 32 on 1 and 2 GPUs:
#            samples/s, efficiency, exposed all-reduce ms (metrics.jsonl "allreduce_ms")
# Usage: bash tools/gpu-dp-check.sh all|match|hosts|kill|scale OUTDIR [SCALE_STEPS]
set -u
stage=${1:?all, match, hosts, kill or scale}; out=${2:?output folder}; scale_steps=${3:-16}
root=$(cd "$(dirname "$0")/.." && pwd)
bundle="$root/dist/facm-bundle"
facm=("$bundle/runtime/bin/java" --enable-native-access=ALL-UNNAMED -cp "$bundle/facm-engine.jar:$root/src/main/resources" facm.cli.Main)
mkdir -p "$out"; export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
summary="$out/summary.txt"

losses() { python3 -c "import json,sys; print(' '.join('%.6f' % json.loads(l)['loss'] for l in open(sys.argv[1])))" "$1"; }
compare() { # compare NAME METRICS_A METRICS_B RTOL
  python3 - "$@" <<'PY' | tee -a "$summary"
import json, sys
name, a, b, rtol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
la = [json.loads(l)['loss'] for l in open(a)]; lb = [json.loads(l)['loss'] for l in open(b)]
worst = max(abs(x - y) / abs(x) for x, y in zip(la, lb)) if la and len(la) == len(lb) else float('inf')
print(f"{name}: {len(lb)} steps, max rel loss diff {worst:.2e} (tolerance {rtol:g}) -> {'PASS' if worst <= rtol else 'FAIL'}")
PY
}
common=(--objective fm --model small --data fashion-mnist --batch 64 --precision fp32 --seed 7 --steps 20
        --log-every 1 --ckpt-every 0 --sample-every 0 --ema none)

stage_match() {
  rm -rf "$out/one" "$out/two"
  "${facm[@]}" train "${common[@]}" --device cuda --out "$out/one" > "$out/one.log" 2>&1; echo "1 GPU: exit $?"
  "${facm[@]}" train "${common[@]}" --gpus 2 --out "$out/two" > "$out/two.log" 2>&1; echo "--gpus 2: exit $?"
  grep -m1 "NCCL\|communicator" "$out/two.log"
  compare "match: --gpus 2 x B/2 vs 1 GPU x B (fp32)" "$out/one/metrics.jsonl" "$out/two/metrics.jsonl" 1e-3
}

stage_hosts() {
  rm -rf "$out/hosts"; port=$((29500 + RANDOM % 1000))
  for r in 0 1; do
    env WORLD_SIZE=2 RANK=$r LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port NCCL_P2P_DISABLE=1 \
      NCCL_SHM_DISABLE=1 NCCL_SOCKET_IFNAME=lo \
      "${facm[@]}" train "${common[@]}" --device cuda --out "$out/hosts" > "$out/host$r.log" 2>&1 &
    pids[$r]=$!
  done
  wait ${pids[0]}; e0=$?; wait ${pids[1]}; e1=$?
  echo "two hosts over loopback: exit $e0 / $e1" | tee -a "$summary"
  [ -f "$out/one/metrics.jsonl" ] || stage_match
  compare "hosts: 2 single-GPU hosts (NCCL sockets) vs 1 GPU" "$out/one/metrics.jsonl" "$out/hosts/metrics.jsonl" 1e-3
}

stage_kill() {
  rm -rf "$out/kill"
  # common's --steps and --ckpt-every replaced (picocli refuses an option given twice)
  local args=() skip=0 a
  for a in "${common[@]}"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$a" in --steps|--ckpt-every) skip=1; continue ;; esac
    args+=("$a")
  done
  "${facm[@]}" train "${args[@]}" --steps 2000 --ckpt-every 5 --gpus 2 --out "$out/kill" > "$out/kill.log" 2>&1 &
  job=$!
  for _ in $(seq 1 600); do [ -f "$out/kill/checkpoints/last.safetensors" ] && break; sleep 0.5; done
  victim=$(grep -m1 -o 'pids \[[0-9]*, [0-9]*\]' "$out/kill.log" | grep -o '[0-9]*\]' | tr -d ']')
  echo "killing worker rank 1 (pid $victim)"; kill -9 "$victim"
  wait $job; code=$?
  line=$(grep "^train: worker rank" "$out/kill.log")
  echo "kill: launcher exit $code: $line" | tee -a "$summary"
  sleep 2; left=$(ps -eo args | grep -c "[f]acm.cli.Main train.*$out/kill")
  echo "kill: worker processes left: $left" | tee -a "$summary"
  step=$(python3 -c "import json; print(json.loads(open('$out/kill/checkpoints/last.safetensors','rb').read(8+int.from_bytes(open('$out/kill/checkpoints/last.safetensors','rb').read(8),'little'))[8:])['__metadata__']['counters'])" 2>/dev/null | python3 -c "import json,sys; print(json.loads(sys.stdin.read())['step'])")
  "${facm[@]}" train --resume --out "$out/kill" --steps $((step + 5)) --gpus 2 > "$out/resume.log" 2>&1
  echo "kill: resume from step $step with --gpus 2 to $((step + 5)): exit $? ($(grep -c '"step"' "$out/kill/metrics.jsonl") metric lines)" | tee -a "$summary"
  rm -rf "$out/kill/checkpoints"
}

stage_scale() {
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
  printf "%-6s %-5s %-12s %-12s %-11s %-10s %-14s\n" gpus per_gpu global_batch samples/s efficiency peak_GiB allreduce_ms | tee -a "$summary"
  for per in 16 32; do
    for g in 1 2; do
      run="$out/xl-g$g-b$per"; rm -rf "$run"; batch=$((per * g)); extra=(--device cuda); [ $g -gt 1 ] && extra=(--gpus $g)
      "${facm[@]}" train --objective facm --model XL/1 --data "$out/latents" --precision bf16 --batch $batch \
        --steps "$scale_steps" --log-every $((scale_steps / 2)) --ckpt-every 0 --sample-every 0 --ema none \
        "${extra[@]}" --out "$run" > "$run.log" 2>&1
      code=$?
      rm -rf "$run/checkpoints"
      python3 - "$run/metrics.jsonl" $g $per $batch $code "$out/xl-g1-b$per/metrics.jsonl" <<'PY' | tee -a "$summary"
import json, sys
path, g, per, batch, code, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
def last(p):
    try: return [json.loads(l) for l in open(p)][-1]   # the second half: warm-up excluded
    except Exception: return None
m = last(path)
if m is None: print(f"{g:<6} {per:<5} {batch:<12} failed (exit {code}, see the .log)"); sys.exit()
b = last(base); eff = m['samples_per_s'] / (g * b['samples_per_s']) if b and g > 1 else 1.0
print(f"{g:<6} {per:<5} {batch:<12} {m['samples_per_s']:<12.1f} {eff*100:<10.1f}% {m.get('peak_mem_gib', -1):<10} {m.get('allreduce_ms', 0):<14.1f}")
PY
    done
  done
}

case "$stage" in
  all) stage_match; stage_hosts; stage_kill; stage_scale ;;
  match|hosts|kill|scale) "stage_$stage" ;;
  *) echo "unknown stage $stage" >&2; exit 2 ;;
esac
echo "== summary"; cat "$summary"
