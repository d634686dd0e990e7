#!/usr/bin/env bash
# The FACM issue's GPU-host work, from the repository root on the GPU host, with the bundle of tools/make-bundle.sh
# carried along (dist/facm-bundle). Stages (the first argument):
#   check    regenerates the FACM reference fixture (tools/reference/make_facm_fixture.py) into the checkout's test
#            resources (a copy also goes to OUTDIR/fixtures), then runs the whole GPU suite and the CPU tests with it
#   distill  trains an FM teacher 'small' on the bundled Fashion-MNIST, distills it with --objective facm (and short
#            scm and meanflow runs from the same teacher), and draws the comparison grids: the teacher's Euler sampler
#            at 1, 2 and 32 steps and the students' consistency sampler at NFE 1 and 2 (same noise seed and classes)
# Usage: bash tools/gpu-facm-run.sh check|distill OUTDIR [TEACHER_STEPS FACM_STEPS BASELINE_STEPS]
set -u
stage=${1:?check or distill}; out=${2:?output folder}
teacher_steps=${3:-4000}; facm_steps=${4:-1500}; baseline_steps=${5:-500}
root=$(cd "$(dirname "$0")/.." && pwd)
bundle="$root/dist/facm-bundle"
facm=("$bundle/runtime/bin/java" --enable-native-access=ALL-UNNAMED -cp "$bundle/facm-engine.jar:$root/src/main/resources" facm.cli.Main)
mkdir -p "$out"; export PYTHONUNBUFFERED=1
grid() { # grid CKPT OUT.png ARGS...: 10 samples of each class from the sampling EMA
  local ckpt=$1 png=$2; shift 2
  "${facm[@]}" sample --ckpt "$ckpt" --ema power_0.2 --n 100 --classes 0,1,2,3,4,5,6,7,8,9 --seed 1 --device cuda \
    --out "$png" "$@" | tail -1
}
case "$stage" in
  check)
    python3 "$root/tools/reference/make_facm_fixture.py" "$out/fixtures" > "$out/facm_fixture.log" 2>&1
    echo "facm fixture: exit $?"; tail -4 "$out/facm_fixture.log"
    cp "$out"/fixtures/tiny_facm.safetensors "$root/src/test/resources/fixtures/" 2>/dev/null
    bash "$bundle/run-gpu-suite.sh" --cpu-tests --deadline "${DEADLINE:-420}" "$out/suite" > "$out/suite.log" 2>&1
    echo "suite: exit $?"; grep -A8 "suite summary" "$out/suite.log" | grep -E "gpu tests|cpu tests"
    grep -E "FAILED|✘" "$out/suite.log" | head -20
    ;;
  distill)
    t0=$SECONDS
    "${facm[@]}" train --objective fm --model small --steps "$teacher_steps" --batch 128 --lr 3e-4 --precision tf32 \
      --device cuda --out "$out/teacher" --log-every 250 --ckpt-every 0 --sample-every 0 2>&1 \
      > "$out/teacher.log"; tail -1 "$out/teacher.log"; sed -n '1p;$p' "$out/teacher/metrics.jsonl"
    echo "teacher: $((SECONDS - t0)) s"
    teacher="$out/teacher/checkpoints/last.safetensors"
    for nfe in 1 2 32; do grid "$teacher" "$out/teacher-euler$nfe.png" --sampler euler --steps $nfe; done
    for obj in facm scm meanflow; do
      t1=$SECONDS; steps=$baseline_steps; extra=()
      [ "$obj" = facm ] && steps=$facm_steps
      [ "$obj" = meanflow ] && extra=(--aux-time)
      "${facm[@]}" train --objective $obj --teacher "$teacher" "${extra[@]}" --steps "$steps" --batch 128 \
        --precision tf32 --device cuda --out "$out/$obj" --log-every 100 --ckpt-every 0 --sample-every 0 2>&1 \
        > "$out/$obj.log"; tail -1 "$out/$obj.log"; sed -n '1p;$p' "$out/$obj/metrics.jsonl"
      echo "$obj: $((SECONDS - t1)) s"
      for nfe in 1 2; do grid "$out/$obj/checkpoints/last.safetensors" "$out/$obj-nfe$nfe.png" --nfe $nfe; done
    done
    rm -rf "$out"/*/checkpoints   # too big to bring back; the logs, metrics and grids come back
    ;;
  *) echo "unknown stage $stage" >&2; exit 2 ;;
esac
