#!/usr/bin/env python3
"""PyTorch reference for bench/GemmBenchmark: matmul TFLOP/s on the same shapes and precisions.

Measure (on a GPU host with PyTorch):
    python3 gemm_bench.py --json out/torch_gemm.json
Compare with a JMH run of GemmBenchmark (needs no PyTorch):
    python3 gemm_bench.py --compare out/jmh.json out/torch_gemm.json

Shapes are "MxKxN". The layout is a linear layer's, as in Backend.linear and GemmBenchmark: x is [m, k], the weight
W is [n, k], out = x @ W.T is [m, n] (cuBLAS gets a transpose flag, no copy). FLOP per GEMM = 2*m*n*k.
Modes, named as GemmBenchmark's `mode` parameter:
    bf16-f32   bf16 inputs, fp32 output (torch.mm out_dtype=float32; skipped where this PyTorch lacks it)
    bf16-bf16  bf16 inputs, bf16 output (what x.bfloat16() @ w.bfloat16().T gives)
    tf32       fp32 tensors, torch.set_float32_matmul_precision("high")
    fp32       fp32 tensors, torch.set_float32_matmul_precision("highest")
Timing: CUDA events around `--gemms` back-to-back products into a preallocated output, after `--warmup` such
rounds; the median of `--repeats` rounds is reported (min and max are kept in the JSON).
"""
import argparse
import json
import math
import statistics
import sys
import time

DEFAULT_SHAPES = ["4096x4096x4096", "8192x8192x8192", "16384x1152x3456", "16384x1152x6144"]
SHAPE_LABELS = {
    "4096x4096x4096": "square 4096",
    "8192x8192x8192": "square 8192",
    "16384x1152x3456": "XL/1 qkv (16384 tok)",
    "16384x1152x6144": "XL/1 w12 (16384 tok)",
}
MODES = ["bf16-f32", "bf16-bf16", "tf32", "fp32"]


def parse_shape(text):
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"shape '{text}' is not MxKxN with positive integers")
    return tuple(int(p) for p in parts)


def flop(m, k, n):
    return 2.0 * m * n * k


# ---------------------------------------------------------------------------------------------- measuring

def measure(torch, device, shape, mode, gemms, warmup, repeats, seed):
    """Times one (shape, mode); returns a result dict, with 'error' instead of timings when it cannot run."""
    m, k, n = shape
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(m, k, device=device, generator=gen)
    w = torch.randn(n, k, device=device, generator=gen)
    if mode.startswith("bf16"):
        x, w = x.bfloat16(), w.bfloat16()
    else:
        torch.set_float32_matmul_precision("high" if mode == "tf32" else "highest")
    wt = w.t()

    if mode == "bf16-f32":
        out = torch.empty(m, n, device=device, dtype=torch.float32)

        def product():
            torch.mm(x, wt, out_dtype=torch.float32, out=out)
    else:
        out = torch.empty(m, n, device=device, dtype=x.dtype)

        def product():
            torch.mm(x, wt, out=out)

    try:
        product()
        sync(torch, device)
    except (TypeError, RuntimeError) as e:  # e.g. a PyTorch without mm(out_dtype=...), or without its out= form
        if mode != "bf16-f32":
            return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}

        def product():
            torch.mm(x, wt, out_dtype=torch.float32)
        try:
            out = torch.mm(x, wt, out_dtype=torch.float32)
            sync(torch, device)
        except (TypeError, RuntimeError) as e2:
            return {"error": f"{type(e2).__name__}: {str(e2).splitlines()[0][:200]}"}
    if not torch.isfinite(out.float()).all():
        return {"error": "non-finite values in the product"}

    def one_round():
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(gemms):
                product()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / gemms
        t0 = time.perf_counter()
        for _ in range(gemms):
            product()
        return (time.perf_counter() - t0) * 1e3 / gemms

    for _ in range(warmup):
        one_round()
    times = [one_round() for _ in range(repeats)]
    median = statistics.median(times)
    return {
        "median_ms": median,
        "min_ms": min(times),
        "max_ms": max(times),
        "tflops": flop(m, k, n) / (median * 1e-3) / 1e12,
    }


def sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_benchmarks(args):
    try:
        import torch
    except ImportError:
        print("gemm_bench.py: PyTorch is not installed here (pip install torch); nothing measured", file=sys.stderr)
        return 2
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("gemm_bench.py: torch.cuda.is_available() is False: no GPU for PyTorch here", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    cap = torch.cuda.get_device_capability(0) if device == "cuda" else None
    print(f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) on {gpu}; "
          f"{args.gemms} GEMMs per timing, {args.warmup} warm-up rounds, median of {args.repeats}")
    header = f"{'shape MxKxN':<18} {'label':<22} {'mode':<10} {'ms/GEMM':>9} {'TFLOP/s':>9}"
    print(header)
    print("-" * len(header))
    results = []
    for shape_text in args.shapes:
        shape = parse_shape(shape_text)
        for mode in args.modes:
            r = measure(torch, device, shape, mode, args.gemms, args.warmup, args.repeats, args.seed)
            entry = {"shape": shape_text, "label": SHAPE_LABELS.get(shape_text, ""), "m": shape[0], "k": shape[1],
                     "n": shape[2], "mode": mode, **r}
            results.append(entry)
            if "error" in r:
                print(f"{shape_text:<18} {entry['label']:<22} {mode:<10} {'n/a':>9} {'n/a':>9}  {r['error']}")
            else:
                print(f"{shape_text:<18} {entry['label']:<22} {mode:<10} {r['median_ms']:9.3f} {r['tflops']:9.1f}")
            sys.stdout.flush()
            if device == "cuda":
                torch.cuda.empty_cache()
    report = {
        "tool": "tools/reference/gemm_bench.py",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": gpu,
        "capability": f"{cap[0]}{cap[1]}" if cap else None,
        "layout": "out[m,n] = x[m,k] @ W[n,k].T",
        "flop_per_gemm": "2*m*n*k",
        "settings": {
            "gemms_per_timing": args.gemms, "warmup": args.warmup, "repeats": args.repeats, "seed": args.seed,
            "bf16_reduced_precision_reduction":
                bool(torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction) if device == "cuda" else None,
        },
        "results": results,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0 if any("error" not in r for r in results) else 1


# ---------------------------------------------------------------------------------------------- comparing

def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        print(f"({what}: {path} not found)")
    except (OSError, ValueError) as e:
        print(f"({what}: cannot read {path}: {e})")
    return None


def ours_tflops(entry, shape_text):
    """TFLOP/s of one JMH GemmBenchmark result: its 'teraflop' counter, else GEMM/s times the GEMM's FLOP."""
    secondary = entry.get("secondaryMetrics", {}).get("teraflop")
    if secondary and not math.isnan(secondary.get("score", float("nan"))):
        return secondary["score"]
    primary = entry["primaryMetric"]
    if primary.get("scoreUnit") == "ops/s":
        return primary["score"] * flop(*parse_shape(shape_text)) / 1e12
    return None


def compare(jmh_path, torch_path, gpu_fallback):
    jmh = load_json(jmh_path, "JMH results") or []
    ref = load_json(torch_path, "PyTorch results") or {}
    gpu = ref.get("device") or gpu_fallback or "?"
    torch_by_key = {(r["shape"], r["mode"]): r for r in ref.get("results", [])}
    rows, other, seen = [], [], set()
    for e in jmh:
        name = e["benchmark"].rsplit(".", 2)
        short = ".".join(name[-2:])
        params = e.get("params", {})
        if "shape" in params and "mode" in params:
            key = (params["shape"], params["mode"])
            seen.add(key)
            ours = ours_tflops(e, params["shape"])
            theirs = torch_by_key.get(key, {}).get("tflops")
            rows.append((short, key, ours, theirs))
        else:
            p = ",".join(f"{k}={v}" for k, v in params.items())
            pm = e["primaryMetric"]
            other.append(f"{short}{'(' + p + ')' if p else ''}: {pm['score']:.3f} ± {pm.get('scoreError', float('nan')):.3f} "
                         f"{pm['scoreUnit']}")
    for key, r in torch_by_key.items():  # PyTorch-only rows, so the reference numbers always show
        if key not in seen:
            rows.append(("(not in JMH run)", key, None, r.get("tflops")))

    def order(row):
        shape, mode = row[1]
        known = DEFAULT_SHAPES.index(shape) if shape in DEFAULT_SHAPES else len(DEFAULT_SHAPES)
        return known, shape, MODES.index(mode) if mode in MODES else len(MODES), mode

    rows.sort(key=order)

    def fmt(v):
        return "n/a" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.3g}"

    # The columns of bench/README.md's results table, so a run's output can be pasted there.
    print("| benchmark | shape | GPU | ours TFLOP/s | PyTorch TFLOP/s | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for short, (shape, mode), ours, theirs in rows:
        label = SHAPE_LABELS.get(shape, "")
        ratio = f"{ours / theirs:.2f}" if ours is not None and theirs else "n/a"
        print(f"| {short} {mode} | {shape}{' ' + label if label else ''} | {gpu} | {fmt(ours)} | {fmt(theirs)} | {ratio} |")
    for line in other:
        print(line)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--shapes", type=lambda s: s.split(","), default=DEFAULT_SHAPES, help="comma list of MxKxN")
    p.add_argument("--modes", type=lambda s: s.split(","), default=MODES, help="comma list of " + ",".join(MODES))
    p.add_argument("--gemms", type=int, default=10, help="GEMMs per timed round (default 10, as GemmBenchmark)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu only to try the script out")
    p.add_argument("--compare", nargs=2, metavar=("JMH_JSON", "TORCH_JSON"),
                   help="print ours vs PyTorch from a JMH JSON and this script's JSON, then exit")
    p.add_argument("--gpu", help="with --compare: the GPU's name when the PyTorch JSON has none")
    args = p.parse_args(argv)
    if args.compare:
        return compare(*args.compare, args.gpu)
    for s in args.shapes:
        parse_shape(s)
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        p.error(f"unknown mode(s) {bad}: use {MODES}")
    if min(args.gemms, args.repeats) < 1 or args.warmup < 0:
        p.error("--gemms and --repeats must be >= 1, --warmup >= 0")
    return run_benchmarks(args)


if __name__ == "__main__":
    sys.exit(main())
