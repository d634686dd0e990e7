#!/usr/bin/env bash
# The few-step quality table of the evaluation issue, on a GPU host, from the repository root with the bundle of
# tools/make-bundle.sh carried along (dist/facm-bundle). On the bundled Fashion-MNIST it trains an FM teacher
# ('small'), distills it with facm, facm --aux-time, scm and meanflow (same steps, batch and lr each), trains facm from
# scratch (same budget), then runs `eval` (FID with the bundled classifier's features, class consistency, time per
# NFE): the teacher's Euler sampler at NFE 1 2 4 8 32 100 and every few-step model's consistency sampler at NFE 1 and
# 2, all with the same --n, sampling seed and classes.
#
# facm and meanflow are trained once per training seed in SEEDS (default "1 2 3"), so the table can say whether their
# difference is larger than what a different seed alone gives (mean ± sample standard deviation over seeds); the other
# students use the first seed. The runs are spread over the host's GPUs: each GPU is a lane that runs its share of the
# jobs one after the other (CUDA_VISIBLE_DEVICES per job). Prints the table (markdown) and writes OUTDIR/quality.md,
# OUTDIR/quality.json (every run, every NFE) and OUTDIR/runs.tsv (wall seconds per run).
# Usage: bash tools/quality-table.sh OUTDIR [TEACHER_STEPS STUDENT_STEPS N]   (env: SEEDS, GPUS)
set -u
out=${1:?output folder}; teacher_steps=${2:-3000}; student_steps=${3:-1000}; n=${4:-10000}
seeds=(${SEEDS:-1 2 3})
gpus=${GPUS:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}
[ "$gpus" -ge 1 ] 2>/dev/null || gpus=1
root=$(cd "$(dirname "$0")/.." && pwd)
bundle="$root/dist/facm-bundle"
facm=("$bundle/runtime/bin/java" --enable-native-access=ALL-UNNAMED -cp "$bundle/facm-engine.jar:$root/src/main/resources" facm.cli.Main)
mkdir -p "$out"
: > "$out/runs.tsv"
common=(--batch 128 --precision tf32 --device cuda --log-every 100 --ckpt-every 0 --sample-every 0)
teacher="$out/teacher/checkpoints/last.safetensors"

train() { # train GPU NAME ARGS...: one run on one GPU, its wall time into runs.tsv
  local gpu=$1 name=$2; shift 2; local t=$SECONDS
  CUDA_VISIBLE_DEVICES=$gpu "${facm[@]}" train --out "$out/$name" "${common[@]}" "$@" > "$out/$name.log" 2>&1 \
    || { echo "$name failed:"; tail -3 "$out/$name.log"; }
  printf '%s\t%s\n' "$name" $((SECONDS - t)) >> "$out/runs.tsv"
  echo "$name (GPU $gpu): $((SECONDS - t)) s, $(tail -1 "$out/$name/metrics.jsonl" 2>/dev/null | cut -c1-100)"
}
evaluate() { # evaluate GPU NAME SAMPLER NFES
  local gpu=$1 name=$2 sampler=$3 nfes=$4
  CUDA_VISIBLE_DEVICES=$gpu "${facm[@]}" eval --ckpt "$out/$name/checkpoints/last.safetensors" --ema power_0.2 \
    --data fashion-mnist --sampler "$sampler" --nfe "$nfes" --n "$n" --seed 1 --device cuda --precision tf32 \
    --out "$out/eval-$name" > "$out/eval-$name.log" 2>&1 || { echo "eval $name failed:"; tail -3 "$out/eval-$name.log"; }
}
lanes() { # lanes JOB...: each JOB is "name|train args" (or "eval|name|sampler|nfes"); job i runs on GPU i mod gpus
  local jobs=("$@") g i
  for ((g = 0; g < gpus; g++)); do
    (
      for ((i = g; i < ${#jobs[@]}; i += gpus)); do
        IFS='|' read -r a b c d <<< "${jobs[$i]}"
        if [ "$a" = eval ]; then evaluate "$g" "$b" "$c" "$d"; else train "$g" "$a" $b; fi
      done
    ) &
  done
  wait
}

t0=$SECONDS
echo "quality table: teacher $teacher_steps steps, students $student_steps steps, n $n, training seeds ${seeds[*]}, $gpus GPU(s)"
first=${seeds[0]}
# The teacher and the from-scratch run need nothing else: they share the first wave.
lanes "teacher|--objective fm --model small --steps $teacher_steps --lr 3e-4 --seed 0" \
      "facm-scratch|--objective facm --model small --steps $student_steps --lr 3e-4 --seed $first"
jobs=()
for s in "${seeds[@]}"; do
  jobs+=("facm-s$s|--objective facm --teacher $teacher --steps $student_steps --seed $s"
         "meanflow-s$s|--objective meanflow --aux-time --teacher $teacher --steps $student_steps --seed $s")
done
jobs+=("facm-aux-s$first|--objective facm --aux-time --teacher $teacher --steps $student_steps --seed $first"
       "scm-s$first|--objective scm --teacher $teacher --steps $student_steps --seed $first")
lanes "${jobs[@]}"
echo "training: $((SECONDS - t0)) s"
evals=("eval|teacher|euler|1,2,4,8,32,100" "eval|facm-scratch|consistency|1,2")
for j in "${jobs[@]}"; do evals+=("eval|${j%%|*}|consistency|1,2"); done
lanes "${evals[@]}"
echo "all: $((SECONDS - t0)) s on $gpus GPU(s)"

python3 - "$out" "$teacher_steps" "$student_steps" "$n" <<'PY'
import json, os, re, statistics, sys
out, ts, ss, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
secs = dict(line.split("\t") for line in open(os.path.join(out, "runs.tsv")).read().split("\n") if line)
label = {"teacher": f"FM teacher, Euler ({ts} steps)", "facm": f"FACM distilled ({ss} steps)",
         "facm-aux": f"FACM distilled, aux time ({ss} steps)", "scm": f"sCM distilled ({ss} steps)",
         "meanflow": f"MeanFlow distilled, aux time ({ss} steps)", "facm-scratch": f"FACM from scratch ({ss} steps)"}
rows, groups = [], {}
for d in sorted(os.listdir(out)):
    f = os.path.join(out, d, "eval.json")
    if not d.startswith("eval-") or not os.path.exists(f):
        continue
    run = d[5:]
    m = re.fullmatch(r"(.+)-s(\d+)", run)
    model, seed = (m.group(1), int(m.group(2))) if m else (run, None)
    for r in json.load(open(f))["results"]:
        rows.append({"model": model, "train_seed": seed, "run": run, "train_seconds": int(secs.get(run, -1)), **r})
        groups.setdefault((model, r["nfe"]), []).append(rows[-1])
table = []
for model in ["teacher", "facm", "meanflow", "facm-aux", "scm", "facm-scratch"]:
    for nfe in sorted(k[1] for k in groups if k[0] == model):
        g = groups[(model, nfe)]
        fids = [r["fid"] for r in g]
        fid = f"{fids[0]:.3f}" if len(fids) == 1 else \
            f"{statistics.mean(fids):.3f} ± {statistics.stdev(fids):.3f} ({', '.join(f'{x:.2f}' for x in fids)})"
        ccs = [r["class_consistency"] for r in g if r.get("class_consistency") is not None]
        cc = f"{100 * statistics.mean(ccs):.1f} %" if ccs else "n/a"
        ms = statistics.mean(r["ms_per_nfe_per_image"] for r in g)
        tsec = round(statistics.mean(r["train_seconds"] for r in g))
        table.append(f"| {label.get(model, model)} | {len(g)} | {nfe} | {fid} | {cc} | {ms:.4f} | {tsec} |")
head = ("| model | training seeds | NFE | FID (mean ± sd over seeds) | class consistency | ms per NFE per image "
        "| training s |\n| --- | --- | --- | --- | --- | --- | --- |")
md = head + "\n" + "\n".join(table)
open(os.path.join(out, "quality.md"), "w").write(md + "\n")
json.dump(rows, open(os.path.join(out, "quality.json"), "w"), indent=1)
print(md)
PY
rm -rf "$out"/*/checkpoints
