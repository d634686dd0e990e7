#!/usr/bin/env python3
"""Times one LightningDiT forward pass (the work of one-step sampling) in PyTorch on the GPU, for side-by-side
comparison with the engine's ForwardBenchmark in the same device session.

Uses the reference model of lightningdit.py with random weights, but with PyTorch's fused
scaled_dot_product_attention in place of the reference's explicit softmax (that is what the official code runs for
sampling). Modes: fp32 (TF32 off), tf32 (TF32 matmuls), bf16 (autocast). Timing: CUDA events, warm-up, median.

    python3 tools/reference/forward_bench.py --model XL/1 --batches 64,256 --json out.json
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lightningdit  # noqa: E402
import lightningdit_config  # noqa: E402


def sdpa_forward(self, a, rope_cos, rope_sin):
    b, t, d = a.shape
    q, k, v = self.qkv(a).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
    if self.q_norm is not None:
        q, k = self.q_norm(q), self.k_norm(k)
    if rope_cos is not None:
        q, k = lightningdit.apply_rope(q, rope_cos, rope_sin), lightningdit.apply_rope(k, rope_cos, rope_sin)
    out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype)).transpose(1, 2).reshape(b, t, d)
    return self.proj(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="XL/1")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--modes", default="fp32,tf32,bf16")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    lightningdit.Attention.forward = sdpa_forward
    cfg = lightningdit_config.preset(args.model)
    torch.manual_seed(0)
    model = lightningdit.LightningDiT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            torch.nn.init.normal_(p, std=0.02)
            if name.endswith("norm.weight") or name.endswith("norm1.weight") or name.endswith("norm2.weight") \
                    or name.endswith("norm_final.weight"):
                p.fill_(1.0)
    model = model.cuda().eval()
    dev = torch.cuda.get_device_name(0)
    print(f"PyTorch {torch.__version__} on {dev}: {args.model} forward, SDPA attention, median of {args.repeats}",
          flush=True)
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        x = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, device="cuda")
        t = torch.zeros(batch, device="cuda")
        y = torch.arange(batch, device="cuda") % cfg.num_classes
        for mode in args.modes.split(","):
            torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
            torch.backends.cudnn.allow_tf32 = mode == "tf32"
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if mode == "bf16" else torch.autocast("cuda", enabled=False)
            times = []
            with torch.no_grad(), ctx:
                for i in range(3 + args.repeats):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    model(x, t, y)
                    e.record()
                    torch.cuda.synchronize()
                    if i >= 3:
                        times.append(s.elapsed_time(e))
            times.sort()
            ms = times[len(times) // 2]
            rows.append({"model": args.model, "batch": batch, "mode": mode, "ms": ms, "images_per_s": batch / ms * 1e3,
                         "gpu": dev})
            print(f"{args.model:6} batch {batch:4} {mode:5} {ms:9.2f} ms  {batch / ms * 1e3:8.1f} images/s", flush=True)
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"peak memory {peak:.1f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "torch": torch.__version__, "gpu": dev, "time": time.time()}, f, indent=1)


if __name__ == "__main__":
    main()
