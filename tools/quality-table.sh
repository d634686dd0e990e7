#!/usr/bin/env bash
# The few-step quality table of the evaluation issue, on a GPU host, from the repository root with the bundle of
# tools/make-bundle.sh carried along (dist/facm-bundle). On the bundled Fashion-MNIST it trains an FM teacher
# ('small'), distills it with facm, scm and meanflow (same steps, batch and lr each), trains facm from scratch (same
# budget), then runs `eval` (FID with the bundled classifier's features, class consistency, time per NFE): the
# teacher's Euler sampler at NFE 1 2 4 8 32 100 and every few-step model's consistency sampler at NFE 1 and 2, all
# with the same --n, seed and classes. Prints the table (markdown) and writes OUTDIR/quality.md, OUTDIR/quality.json.
# Usage: bash tools/quality-table.sh OUTDIR [TEACHER_STEPS STUDENT_STEPS N]
set -u
out=${1:?output folder}; teacher_steps=${2:-3000}; student_steps=${3:-1000}; n=${4:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
bundle="$root/dist/facm-bundle"
facm=("$bundle/runtime/bin/java" --enable-native-access=ALL-UNNAMED -cp "$bundle/facm-engine.jar:$root/src/main/resources" facm.cli.Main)
mkdir -p "$out"
common=(--batch 128 --precision tf32 --device cuda --log-every 100 --ckpt-every 0 --sample-every 0)
train() { # train NAME ARGS...: one run, its wall time into OUTDIR/NAME.seconds
  local name=$1; shift; local t=$SECONDS
  "${facm[@]}" train --out "$out/$name" "${common[@]}" "$@" > "$out/$name.log" 2>&1 || { echo "$name failed:"; tail -3 "$out/$name.log"; }
  echo $((SECONDS - t)) > "$out/$name.seconds"; echo "$name: $(cat "$out/$name.seconds") s, $(tail -1 "$out/$name/metrics.jsonl" | cut -c1-110)"
}
evaluate() { # evaluate NAME SAMPLER NFES [ARGS...]
  local name=$1 sampler=$2 nfes=$3; shift 3
  "${facm[@]}" eval --ckpt "$out/$name/checkpoints/last.safetensors" --ema power_0.2 --data fashion-mnist \
    --sampler "$sampler" --nfe "$nfes" --n "$n" --seed 1 --device cuda --precision tf32 --out "$out/eval-$name" "$@" \
    > "$out/eval-$name.log" 2>&1 || { echo "eval $name failed:"; tail -3 "$out/eval-$name.log"; }
}
t0=$SECONDS
train teacher --objective fm --model small --steps "$teacher_steps" --lr 3e-4
teacher="$out/teacher/checkpoints/last.safetensors"
train facm --objective facm --teacher "$teacher" --steps "$student_steps"
train scm --objective scm --teacher "$teacher" --steps "$student_steps"
train meanflow --objective meanflow --aux-time --teacher "$teacher" --steps "$student_steps"
train facm-scratch --objective facm --model small --steps "$student_steps" --lr 3e-4
echo "training: $((SECONDS - t0)) s"
evaluate teacher euler 1,2,4,8,32,100
for m in facm scm meanflow facm-scratch; do evaluate $m consistency 1,2; done
echo "all: $((SECONDS - t0)) s"
python3 - "$out" "$teacher_steps" "$student_steps" "$n" <<'PY'
import json, os, sys
out, ts, ss, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows, table = [], []
label = {"teacher": f"FM teacher, Euler ({ts} steps)", "facm": f"FACM distilled ({ss} steps)",
         "scm": f"sCM distilled ({ss} steps)", "meanflow": f"MeanFlow distilled ({ss} steps)",
         "facm-scratch": f"FACM from scratch ({ss} steps)"}
for name in ["teacher", "facm", "scm", "meanflow", "facm-scratch"]:
    f = os.path.join(out, "eval-" + name, "eval.json")
    if not os.path.exists(f):
        continue
    e = json.load(open(f))
    secs = open(os.path.join(out, name + ".seconds")).read().strip()
    for r in e["results"]:
        rows.append({"model": name, "train_seconds": int(secs), **r})
        cc = r.get("class_consistency")
        table.append(f"| {label[name]} | {r['nfe']} | {r['fid']:.3f} | {cc * 100 if cc is not None else float('nan'):.1f} % "
                     f"| {r['ms_per_nfe_per_image']:.4f} | {secs} |")
head = ("| model | NFE | FID | class consistency | ms per NFE per image | training s |\n"
        "| --- | --- | --- | --- | --- | --- |")
md = head + "\n" + "\n".join(table)
open(os.path.join(out, "quality.md"), "w").write(md + "\n")
json.dump(rows, open(os.path.join(out, "quality.json"), "w"), indent=1)
print(md)
PY
rm -rf "$out"/*/checkpoints
