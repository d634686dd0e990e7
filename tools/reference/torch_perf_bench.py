#!/usr/bin/env python3
"""The PyTorch side of the performance issue's comparison (tools/compare-torch.sh), one JSON file per run:

  card      the card's bf16 matrix rate (8192³ bf16 matmul, median) and its copy bandwidth (a 1 GiB device-to-device
            copy, read + write bytes / time, median)
  sampling  one-step (and two-step) consistency sampling as samplers.consistency_sample does it, the reference model
            with PyTorch's fused SDPA attention (as forward_bench.py), bf16 autocast, random weights; the timed region
            is the whole sampler: noise uploaded from the host, NFE forwards with the float64 state update on the GPU,
            samples downloaded (as bench/OneStepSampling times ConsistencySampler.sample); eager and torch.compile
            (dynamic=False, one graph per batch size, compile time kept out of the timing but reported)
  step      the official-style FACM step of facm_step_bench.py (math attention, torch.func.jvp), eager and compiled

    python3 tools/reference/torch_perf_bench.py --only card,sampling --modes eager,compile --json out/torch_sampling.json
    python3 tools/reference/torch_perf_bench.py --only step --step-batches 16,32 --json out/torch_step.json

Timing: CUDA events, warm-up rounds first, the median of --repeats (sampling) or --steps (step). Nothing is cached
across machines: torch.compile starts cold on each fresh host (minutes for XL/1), so --modes and --only let a caller
split a long run. Every row carries its own error or OOM instead of ending the run.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import facm_step_bench  # noqa: E402
import lightningdit  # noqa: E402
import lightningdit_config  # noqa: E402
import samplers  # noqa: E402
from forward_bench import sdpa_forward  # noqa: E402

MATH_ATTENTION = lightningdit.Attention.forward


def timed(fn, warmup, repeats):
    """Median, min and max milliseconds of fn() by CUDA events, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times), min(times), max(times)


def card(args):
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)

    def products():
        for _ in range(4):
            torch.mm(a, b.t(), out=out)
    ms, _, _ = timed(products, 2, 7)
    bf16 = 2.0 * n ** 3 / (ms / 4 * 1e-3) / 1e12
    del a, b, out
    src = torch.empty(1 << 30, device="cuda", dtype=torch.uint8).fill_(1)
    dst = torch.empty_like(src)
    ms, _, _ = timed(lambda: dst.copy_(src), 2, 9)
    copy = 2.0 * src.numel() / (ms * 1e-3) / 1e9
    del src, dst
    torch.cuda.empty_cache()
    row = {"bf16_tflops": bf16, "copy_gbps": copy, "bf16_shape": "8192x8192x8192", "copy_bytes": 1 << 30}
    print(f"card: bf16 {bf16:.1f} TFLOP/s (8192³), copy {copy:.0f} GB/s (1 GiB, read + write)", flush=True)
    return row


def sampling_model(cfg):
    torch.manual_seed(0)
    model = lightningdit.LightningDiT(cfg).cuda()  # initialized on the GPU: seconds instead of a minute for XL/1
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "pos_embed":
                continue
            torch.nn.init.normal_(p, std=0.02)
            if name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "norm_final.weight")):
                p.fill_(1.0)
    return model.eval().requires_grad_(False)


def sampling(args, dev, emit):
    lightningdit.Attention.forward = sdpa_forward
    try:
        for name in args.models.split(","):
            cfg = lightningdit_config.preset(name)
            eager = sampling_model(cfg)
            for mode in args.modes.split(","):
                torch._dynamo.reset()
                model = eager if mode == "eager" else torch.compile(eager, dynamic=False)
                for batch in [int(b) for b in args.batches.split(",")]:
                    for nfe in [int(k) for k in args.nfe.split(",")]:
                        emit(sample_row(model, cfg, name, batch, nfe, mode, args, dev))
            del eager
            torch.cuda.empty_cache()
    finally:
        lightningdit.Attention.forward = MATH_ATTENTION


def sample_row(model, cfg, name, batch, nfe, mode, args, dev):
    row = {"model": name, "batch": batch, "nfe": nfe, "mode": mode, "precision": "bf16", "gpu": dev,
           "attention": "sdpa"}
    gen = torch.Generator().manual_seed(5)
    z_host = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen).pin_memory()
    y = torch.arange(batch, device="cuda") % cfg.num_classes
    noises = [torch.randn(z_host.shape, device="cuda") for _ in range(nfe - 1)]

    def run():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            z = z_host.to("cuda", non_blocking=False)
            return samplers.consistency_sample(model, z, y, nfe, noises).cpu()
    try:
        t0 = time.time()
        run()  # first call: compiles in compile mode
        row["first_call_s"] = time.time() - t0
        ms, lo, hi = timed(run, args.warmup, args.repeats)
        row.update({"ms": ms, "min_ms": lo, "max_ms": hi, "images_per_s": batch / ms * 1e3})
        print(f"sampling {name:5} batch {batch:4} NFE {nfe} {mode:7} {ms:9.2f} ms {batch / ms * 1e3:9.1f} images/s"
              f"  (first call {row['first_call_s']:.1f} s)", flush=True)
    except torch.OutOfMemoryError:
        row["oom"] = True
        print(f"sampling {name:5} batch {batch:4} NFE {nfe} {mode:7} out of memory", flush=True)
    except Exception as e:  # noqa: BLE001 - a failing compile is a result of its own
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        print(f"sampling {name:5} batch {batch:4} NFE {nfe} {mode:7} failed: {row['error']}", flush=True)
    torch.cuda.empty_cache()
    return row


def step(args, emit):
    lightningdit.Attention.forward = MATH_ATTENTION
    for name in args.step_models.split(","):
        for mode in args.modes.split(","):
            for b in [int(x) for x in args.step_batches.split(",")]:
                row = facm_step_bench.bench_step(name, b, mode, args.steps, args.step_warmup, args.compile_strategy)
                print("step " + facm_step_bench.describe(row), flush=True)
                emit(row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="card,sampling,step", help="comma list of card, sampling, step")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--models", default="XL/1,B/1", help="sampling models")
    ap.add_argument("--batches", default="64,256", help="sampling batch sizes")
    ap.add_argument("--nfe", default="1,2")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--step-models", default="XL/1")
    ap.add_argument("--step-batches", default="16,32")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--step-warmup", type=int, default=2)
    ap.add_argument("--compile-strategy", default="auto", choices=["auto", "model", "modules"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - {"card", "sampling", "step"}
    if unknown:
        ap.error(f"--only: unknown part(s) {sorted(unknown)}; use card, sampling, step")
    if not torch.cuda.is_available():
        raise SystemExit("torch_perf_bench.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    dev = torch.cuda.get_device_name(0)
    print(f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) on {dev}: {', '.join(parts)}; modes "
          f"{args.modes}", flush=True)
    report = {"tool": "tools/reference/torch_perf_bench.py", "torch": torch.__version__, "gpu": dev,
              "started": time.time()}
    out = args.json

    def save():
        if out:  # after every row, so a run stopped by a timeout keeps what it measured
            with open(out + ".tmp", "w") as f:
                json.dump(report, f, indent=1)
            os.replace(out + ".tmp", out)

    def emitter(part):
        report[part] = []

        def emit(row):
            report[part].append(row)
            save()
        return emit
    if "card" in parts:
        report["card"] = card(args)
        save()
    if "sampling" in parts:
        sampling(args, dev, emitter("sampling"))
    if "step" in parts:
        step(args, emitter("step"))
    report["seconds"] = time.time() - report["started"]
    save()


if __name__ == "__main__":
    main()
