#!/usr/bin/env python3
"""The ratio table of the performance issue from JSON files alone (no PyTorch needed): ours from JMH
(bench/: OneStepSampling, FacmTrainStep, AttentionBenchmark, RmsNormModulateBenchmark, run with
-prof facm.bench.GpuTimeProfiler) and PyTorch's from tools/reference/torch_perf_bench.py, as tools/compare-torch.sh
writes them into one folder:

    python3 tools/reference/compare_bench.py --compare OUTDIR [--gpu NAME]

reads OUTDIR/jmh*.json and OUTDIR/torch*.json, prints the table and writes OUTDIR/compare.md and OUTDIR/compare.json.
Ours is the CUDA-event median of the profiler (gpu.images/s, gpu.samples/s; the wall-clock counters when the
profiler was off), PyTorch's its CUDA-event median; both time the whole call one after the other on the same card.

Targets (issue 7, LightningDiT-XL/1, bf16): sampling batch 256 NFE 1 >= 1.3x torch.compile; FACM step batch 32
>= 2.5x the compiled PyTorch step with peak <= 45 GiB; batch 16 > 1x. Where PyTorch ran out of memory, the target
counts as met when ours ran.
"""
import argparse
import glob
import json
import os
import sys

SAMPLING_TARGET = 1.3
STEP_TARGET_B32 = 2.5
STEP_TARGET_B16 = 1.0
PEAK_LIMIT_GIB = 45.0


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"({path}: cannot read: {e})", file=sys.stderr)
        return None


def metric(entry, *names):
    """The first of `names` among the entry's secondary metrics (or 'primary'), as a float; None when absent."""
    for name in names:
        if name == "primary":
            return entry.get("primaryMetric", {}).get("score")
        m = entry.get("secondaryMetrics", {}).get(name)
        if m is not None and isinstance(m.get("score"), (int, float)):
            return float(m["score"])
    return None


def jmh_results(folder):
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "jmh*.json"))):
        data = load(path)
        if isinstance(data, list):
            out.extend(data)
    return out


def torch_report(folder):
    """card, sampling rows and step rows merged over every torch*.json of the folder (later files win)."""
    merged = {"card": None, "sampling": [], "step": [], "gpu": None, "torch": None}
    for path in sorted(glob.glob(os.path.join(folder, "torch*.json"))):
        data = load(path)
        if not isinstance(data, dict):
            continue
        merged["gpu"] = data.get("gpu") or merged["gpu"]
        merged["torch"] = data.get("torch") or merged["torch"]
        if data.get("card"):
            merged["card"] = data["card"]
        merged["sampling"] += data.get("sampling", [])
        merged["step"] += data.get("step", [])
    return merged


def short(benchmark):
    return benchmark.rsplit(".", 2)[-2] if benchmark.count(".") >= 2 else benchmark


def torch_value(rows, mode, key, **match):
    """(value, note) of the PyTorch row matching `match` in `mode`: note says 'OOM' or the error when no value."""
    for r in rows:
        if r.get("mode") == mode and all(r.get(k) == v for k, v in match.items()):
            if r.get("oom"):
                return None, "OOM"
            if "error" in r:
                return None, "failed"
            return r.get(key), r.get("compile", "")
    return None, "not run"


def fmt(v, digits=1):
    return "—" if v is None else f"{v:,.{digits}f}"


def verdict(ours, compiled, compiled_note, target, strict=False):
    if ours is None:
        return "not run"
    if compiled is None:
        return "met (PyTorch out of memory)" if compiled_note == "OOM" else "no PyTorch compiled number"
    ratio = ours / compiled
    ok = ratio > target if strict else ratio >= target
    return "met" if ok else f"NOT met ({ratio / target:.0%} of target)"


def build_rows(jmh, ref):
    rows = []
    card_ours = None
    for e in jmh:
        kind = short(e.get("benchmark", ""))
        p = e.get("params", {})
        card_ours = metric(e, "card.bf16TFLOP/s") or card_ours
        if kind == "OneStepSampling":
            ours = metric(e, "gpu.images/s", "images")
            match = {"model": p.get("model"), "batch": int(p.get("batch", 0)), "nfe": int(p.get("nfe", 0)),
                     "precision": p.get("precision")}
            eager, _ = torch_value(ref["sampling"], "eager", "images_per_s", **match)
            comp, note = torch_value(ref["sampling"], "compile", "images_per_s", **match)
            is_target = match == {"model": "XL/1", "batch": 256, "nfe": 1, "precision": "bf16"}
            rows.append({"order": 1, "work": f"sampling {match['model']} b{match['batch']} NFE {match['nfe']} "
                                 f"{p.get('precision')} (images/s)",
                         "ours": ours, "eager": eager, "compiled": comp, "note": note,
                         "target": f">= {SAMPLING_TARGET}x compiled" if is_target else "",
                         "met": verdict(ours, comp, note, SAMPLING_TARGET) if is_target else "",
                         "of_peak": metric(e, "gpu.ofBf16Peak")})
        elif kind == "FacmTrainStep":
            ours = metric(e, "gpu.samples/s", "samples")
            b = int(p.get("batch", 0))
            match = {"model": p.get("model"), "batch": b}
            eager, _ = torch_value(ref["step"], "eager", "samples_per_s", **match)
            comp, note = torch_value(ref["step"], "compile", "samples_per_s", **match)
            xl = p.get("model") == "XL/1"
            target = STEP_TARGET_B32 if (xl and b == 32) else STEP_TARGET_B16 if (xl and b == 16) else None
            how = p.get("step", "host")
            how = "" if how == "host" else f", {how} step"  # graph: train --cuda-graph-step
            rows.append({"order": 2, "work": f"FACM step {p.get('model')} b{b} {p.get('precision')}{how} (samples/s)",
                         "ours": ours, "eager": eager, "compiled": comp, "note": note,
                         "target": "" if target is None else (f">= {target}x compiled" if target > 1
                                                              else "> 1x compiled"),
                         "met": "" if target is None else verdict(ours, comp, note, target, strict=target == 1.0),
                         "of_peak": metric(e, "gpu.ofBf16Peak")})
            peak = metric(e, "mem.peakGiB")
            peak_eager, _ = torch_value(ref["step"], "eager", "peak_gib", **match)
            peak_comp, _ = torch_value(ref["step"], "compile", "peak_gib", **match)
            if xl and b == 32:
                rows.append({"order": 2, "work": f"FACM step {p.get('model')} b{b}{how} peak memory (GiB)", "ours": peak,
                             "eager": peak_eager, "compiled": peak_comp, "note": "", "ratio_off": True,
                             "target": f"<= {PEAK_LIMIT_GIB:g} GiB",
                             "met": "not run" if peak is None else ("met" if peak <= PEAK_LIMIT_GIB else "NOT met")})
        elif kind == "AttentionBenchmark":
            tf = metric(e, "gpu.TFLOP/s", "teraflop")
            rows.append({"order": 3, "work": f"attention {p.get('op')} {p.get('dtype')} {p.get('shape')} (TFLOP/s)", "ours": tf,
                         "eager": None, "compiled": None, "note": "", "target": "", "met": "",
                         "of_peak": metric(e, "gpu.ofBf16Peak")})
        elif kind == "RmsNormModulateBenchmark":
            gbs = metric(e, "gpu.GB/s", "gigabyte")
            copy = (ref["card"] or {}).get("copy_gbps")
            rows.append({"order": 4, "work": f"rmsNorm+modulate {p.get('dtype')} {p.get('shape')} (GB/s)", "ours": gbs,
                         "eager": None, "compiled": None, "note": "", "target": "", "met": "",
                         "of_copy": gbs / copy if gbs and copy else None})
    card = ref["card"] or {}
    rows.sort(key=lambda r: r["order"])  # stable: JMH's order within a kind
    rows.insert(0, {"order": 0, "work": "card bf16 GEMM 8192³ (TFLOP/s)", "ours": card_ours, "eager": card.get("bf16_tflops"),
                    "compiled": None, "note": "", "target": "", "met": "", "ratio_off": True})
    return rows


def table(rows, gpu, torch_version):
    lines = [f"GPU: {gpu or 'unknown'}; PyTorch {torch_version or '?'}; ours = CUDA-event median (JMH "
             "GpuTimeProfiler), PyTorch = CUDA-event median; ratio = ours / PyTorch compiled (eager where no "
             "compiled number)", "",
             "| work | ours | PyTorch eager | PyTorch compiled | ratio vs compiled | target | met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        base = r["compiled"] if r["compiled"] is not None else r["eager"]
        ratio = "—"
        if not r.get("ratio_off") and r["ours"] is not None and base:
            ratio = f"{r['ours'] / base:.2f}" + ("" if r["compiled"] is not None else " (vs eager)")
        extra = []
        if r.get("of_peak") is not None:
            extra.append(f"{r['of_peak']:.0%} of bf16 peak")
        if r.get("of_copy") is not None:
            extra.append(f"{r['of_copy']:.0%} of copy bw")
        ours = fmt(r["ours"], 2 if (r["ours"] or 0) < 10 else 1) + (f" ({', '.join(extra)})" if extra else "")
        comp = fmt(r["compiled"]) + (f" [{r['note']}]" if r["note"] and r["note"] not in ("", "not run") else "")
        if r["compiled"] is None and r["note"] == "not run":
            comp = "—"
        lines.append(f"| {r['work']} | {ours} | {fmt(r['eager'])} | {comp} | {ratio} | {r['target']} | {r['met']} |")
    return "\n".join(lines)


def compare(folder, gpu):
    jmh = jmh_results(folder)
    ref = torch_report(folder)
    if not jmh and not ref["sampling"] and not ref["step"]:
        print(f"compare_bench: no jmh*.json or torch*.json results in {folder}", file=sys.stderr)
        return 2
    rows = build_rows(jmh, ref)
    text = table(rows, gpu or ref["gpu"], ref["torch"])
    print(text)
    with open(os.path.join(folder, "compare.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(folder, "compare.json"), "w") as f:
        json.dump({"gpu": gpu or ref["gpu"], "torch": ref["torch"], "rows": rows}, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description="the performance ratio table from JSON files (no PyTorch needed)")
    ap.add_argument("--compare", metavar="OUTDIR", required=True, help="folder with jmh*.json and torch*.json")
    ap.add_argument("--gpu", default=None, help="GPU name for the table (default: PyTorch's device name)")
    args = ap.parse_args()
    return compare(args.compare, args.gpu)


if __name__ == "__main__":
    sys.exit(main())
