#!/usr/bin/env python3
"""Times one FACM distillation step (facm-spec.md §5.2: two teacher passes, FM pass, torch.func.jvp pass with math
attention, backward, grad clip 1.0, AdamW lr 1e-4 betas (0.9, 0.999)) in PyTorch, the official code's way, for the
side-by-side comparison of the FACM issue. bf16 autocast, eager; CUDA events, median; peak memory.

    python3 tools/reference/facm_step_bench.py --models XL/1 --batches 16,32 --json out.json
"""
import argparse
import copy
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import facm_objective  # noqa: E402
import lightningdit_config  # noqa: E402
from train_step_bench import make_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="XL/1")
    ap.add_argument("--batches", default="16,32")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    dev = torch.cuda.get_device_name(0)
    print(f"PyTorch {torch.__version__} on {dev}: FACM step (2 teacher passes, FM, torch.func.jvp with math attention,"
          f" backward, clip, AdamW), bf16 autocast, eager, median of {args.steps}", flush=True)
    rows = []
    for name in args.models.split(","):
        cfg = lightningdit_config.preset(name)
        student = make_model(cfg)  # the reference model computes attention explicitly (math attention)
        teacher = copy.deepcopy(student).eval().requires_grad_(False)
        opt = torch.optim.AdamW([p for n, p in student.named_parameters() if n != "pos_embed"], lr=1e-4,
                                betas=(0.9, 0.999), weight_decay=0.0)
        for b in [int(x) for x in args.batches.split(",")]:
            x1 = torch.randn(b, cfg.in_channels, cfg.input_size, cfg.input_size, device="cuda")
            y = torch.randint(0, cfg.num_classes, (b,), device="cuda")
            torch.cuda.reset_peak_memory_stats()
            times = []
            try:
                for i in range(args.warmup + args.steps):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        t = facm_objective.sample_t(b, "cuda")
                        loss, _, _ = facm_objective.facm_loss(student, teacher, x1, y, t, torch.randn_like(x1),
                                                              cfg.null_class)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                    opt.step()
                    e.record()
                    torch.cuda.synchronize()
                    if i >= args.warmup:
                        times.append(s.elapsed_time(e))
                times.sort()
                ms = times[len(times) // 2]
                peak = torch.cuda.max_memory_allocated() / 2**30
                rows.append({"model": name, "batch": b, "ms": ms, "samples_per_s": b / ms * 1e3, "peak_gib": peak,
                             "gpu": dev})
                print(f"{name:6} batch {b:3} {ms:9.1f} ms/step {b / ms * 1e3:8.1f} samples/s  peak {peak:6.1f} GiB",
                      flush=True)
            except torch.OutOfMemoryError:
                print(f"{name:6} batch {b:3} out of memory", flush=True)
                rows.append({"model": name, "batch": b, "oom": True, "gpu": dev})
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "torch": torch.__version__, "gpu": dev}, f, indent=1)


if __name__ == "__main__":
    main()
