#!/usr/bin/env bash
# The command line end to end on a GPU host, with the bundle at dist/facm-bundle: an FM teacher, FACM distillation
# with the host step and with the captured step (train --cuda-graph-step) — their metrics must agree bit for bit —,
# a captured run stopped at a checkpoint and resumed (must equal the uninterrupted one), then sample and eval with the
# CUDA-graph forward. Usage: bash tools/gpu-cli-e2e.sh OUTDIR [STEPS]   (~1-2 min on an H100/H200)
set -uo pipefail
out=${1:?usage: gpu-cli-e2e.sh OUTDIR [STEPS]}; steps=${2:-200}; half=$((steps / 2))
root=$(cd "$(dirname "$0")/.." && pwd); bundle=${FACM_BUNDLE:-$root/dist/facm-bundle}
# The lean bundle's jar leaves the bundled data out: the checkout's src/main/resources has it.
facm=("$bundle/runtime/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow
      -cp "$bundle/facm-engine.jar:$root/src/main/resources" facm.cli.Main)
mkdir -p "$out"; fail=0
run() { local name=$1 rc; shift; echo "==> $name: $*"; "${facm[@]}" "$@" > "$out/$name.log" 2>&1; rc=$?
  [ $rc = 0 ] || { echo "FAIL $name (exit $rc)"; fail=1; }; tail -3 "$out/$name.log"; }
common=(--device "${FACM_DEVICE:-cuda}" --precision bf16 --batch 64 --log-every 10 --sample-every 0 --seed 3)
run teacher train --objective fm --steps "$steps" --out "$out/fm" "${common[@]}"
teacher="$out/fm/checkpoints/last.safetensors"
run host train --teacher "$teacher" --steps "$steps" --out "$out/host" "${common[@]}"
run graph train --teacher "$teacher" --steps "$steps" --out "$out/graph" --cuda-graph-step "${common[@]}"
run graph-half train --teacher "$teacher" --steps "$half" --out "$out/resumed" --cuda-graph-step "${common[@]}"
run graph-resume train --teacher "$teacher" --steps "$steps" --out "$out/resumed" --resume --cuda-graph-step "${common[@]}"
# Losses and norms of every logged step: the keys that are not timings.
python3 - "$out" <<'PY' || fail=1
import json, sys
out = sys.argv[1]
def rows(run):
    keep = []
    for line in open(f"{out}/{run}/metrics.jsonl"):
        r = json.loads(line)
        keep.append({k: v for k, v in r.items() if "time" not in k and "per_s" not in k and "/s" not in k
                     and k not in ("elapsed", "wall", "ms", "eta", "peak_mem_gib")})
    return keep
host, graph, resumed = rows("host"), rows("graph"), rows("resumed")
ok = True
for name, other in (("graph vs host", graph), ("resumed vs graph", resumed)):
    same = other == (host if name.startswith("graph") else graph)
    print(f"{name}: {'identical' if same else 'DIFFERENT'} ({len(other)} metrics lines)")
    if not same:
        ok = False
        a, b = (graph, host) if name.startswith("graph") else (resumed, graph)
        for x, y in zip(a, b):
            if x != y:
                print("  first difference:", x, "vs", y)
                break
print("last:", graph[-1] if graph else None)
sys.exit(0 if ok else 1)
PY
run sample sample --ckpt "$out/graph/checkpoints/last.safetensors" --n 64 --nfe 1 --out "$out/samples.png" --device "${FACM_DEVICE:-cuda}"
run eval eval --ckpt "$out/graph/checkpoints/last.safetensors" --nfe 1,2 --n 2000 --out "$out/eval" --device "${FACM_DEVICE:-cuda}"
echo "gpu-cli-e2e: $([ $fail = 0 ] && echo PASS || echo FAIL)"
exit $fail
