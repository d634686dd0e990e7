#!/usr/bin/env bash
# The training issue's GPU-host work, from the repository root on the GPU host, with the bundle of
# tools/make-bundle.sh carried along (dist/facm-bundle). Stages (pick with the first argument):
#   check  the whole-model gradient fixture from the PyTorch reference, the GPU suite, and the FM training-step
#          benchmarks of ours (JMH TrainStepBenchmark) and PyTorch (tools/reference/train_step_bench.py) side by side
#   teach  trains an FM teacher 'small' on the bundled Fashion-MNIST and samples it with the Euler sampler
# Usage: bash tools/gpu-training-run.sh check|teach OUTDIR [STEPS]
set -u
stage=${1:?check or teach}; out=${2:?output folder}; steps=${3:-6000}
root=$(cd "$(dirname "$0")/.." && pwd)
bundle="$root/dist/facm-bundle"
# The engine from the bundle, with the checkout's resources (a --lean bundle leaves the bundled data to them).
facm=("$bundle/runtime/bin/java" --enable-native-access=ALL-UNNAMED -cp "$bundle/facm-engine.jar:$root/src/main/resources" facm.cli.Main)
mkdir -p "$out"; export PYTHONUNBUFFERED=1
case "$stage" in
  check)
    python3 "$root/tools/reference/make_grad_fixture.py" "$out/fixtures" --device cuda > "$out/grad_fixture.log" 2>&1
    echo "gradient fixture: exit $?"; tail -5 "$out/grad_fixture.log"
    bash "$bundle/run-gpu-suite.sh" "$out/suite" > "$out/suite.log" 2>&1; echo "gpu suite: exit $?"
    grep -A8 "suite summary" "$out/suite.log" | grep -E "gpu tests|cpu tests"
    bash "$bundle/run-gpu-suite.sh" --bench --jmh "TrainStepBenchmark -f 1 -wi 2 -i 3 -w 3s -r 4s -foe true" \
      "$out/bench" > "$out/bench.log" 2>&1; echo "jmh: exit $?"
    grep -E "^TrainStepBenchmark|peak" "$out/bench/jmh.log" | tail -12
    python3 "$root/tools/reference/train_step_bench.py" --models B/1,XL/1 --batch 32 --modes bf16,fp32 \
      --json "$out/torch_train.json" 2>&1 | tee "$out/torch_train.log" | tail -8
    ;;
  teach)
    "${facm[@]}" train --objective fm --model small --steps "$steps" --batch 128 --lr 3e-4 --device cuda \
      --out "$out/teacher" --log-every 200 --ckpt-every 2000 --sample-every 2000 2>&1 | tee "$out/teacher.log" | grep -vE "^\s" | tail -40
    for nfe in 32 8; do
      "${facm[@]}" sample --ckpt "$out/teacher/checkpoints/last.safetensors" --ema power_0.2 --sampler euler \
        --steps $nfe --n 100 --classes 0,1,2,3,4,5,6,7,8,9 --seed 1 --device cuda --out "$out/teacher-euler$nfe.png" | tail -1
    done
    ;;
  *) echo "unknown stage $stage" >&2; exit 2 ;;
esac
