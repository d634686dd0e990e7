#!/usr/bin/env python3
"""Times one stage-1 flow-matching training step (facm-spec.md §4) in PyTorch on the GPU, for side-by-side comparison
with the engine's TrainStepBenchmark (bench/) in the same device session.

Step = draw t ~ U(0,1), eps, label dropout 0.1 (null class), x_t = t·x1 + (1 − t)·eps, network time 2 − t for the
second half of the batch, forward, loss = mean_b [mean (F − u)² + mean_HW (1 − cos_C(F, u))], backward, AdamW
(lr 2e-4, betas (0.9, 0.95), no weight decay, PyTorch's default foreach implementation; --fused for the fused one).
No gradient clipping, no EMA (neither does the Java benchmark). Model: lightningdit.py with random weights, with
PyTorch's fused scaled_dot_product_attention in place of the reference's explicit softmax (as forward_bench.py does;
the official trainer uses it too). Modes: bf16 (autocast: bf16 GEMMs, fp32 master weights/optimizer) and fp32 (TF32
off). Eager only. Timing: CUDA events around each whole step, warm-up steps first, median.

    python3 tools/reference/train_step_bench.py --models B/1,XL/1 --batch 32 --modes bf16,fp32 --json out.json
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
from forward_bench import sdpa_forward  # noqa: E402


def fm_loss(pred, target):
    """Per-sample MSE over C,H,W plus the mean over H,W of 1 − cosine similarity over channels, batch mean."""
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    cos = F.cosine_similarity(pred, target, dim=1, eps=1e-8)
    return (mse + (1 - cos).flatten(1).mean(dim=1)).mean()


def make_model(cfg):
    torch.manual_seed(0)
    model = lightningdit.LightningDiT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "pos_embed":
                continue
            torch.nn.init.normal_(p, std=0.02)
            if name.endswith("norm.weight") or name.endswith("norm1.weight") or name.endswith("norm2.weight") \
                    or name.endswith("norm_final.weight"):
                p.fill_(1.0)
    model = model.cuda().train()
    for name, p in model.named_parameters():
        p.requires_grad_(name != "pos_embed")
    return model


def train_step(model, opt, cfg, x1, labels, mode):
    b = x1.shape[0]
    t = torch.rand(b, device="cuda")
    eps = torch.randn_like(x1)
    y = torch.where(torch.rand(b, device="cuda") < 0.1, torch.full_like(labels, cfg.null_class), labels)
    tb = t[:, None, None, None]
    xt = tb * x1 + (1 - tb) * eps
    target = x1 - eps
    tau = torch.cat([t[: b // 2], 2 - t[b // 2:]])
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=(mode == "bf16")):
        pred = model(xt, tau, y)
    loss = fm_loss(pred.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def bench(name, batch, mode, steps, warmup, fused):
    cfg = lightningdit_config.preset(name)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = make_model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.95), weight_decay=0.0, fused=fused or None)
    x1 = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, device="cuda")
    labels = torch.arange(batch, device="cuda") % cfg.num_classes
    times = []
    loss = None
    for i in range(warmup + steps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        loss = train_step(model, opt, cfg, x1, labels, mode)
        e.record()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(s.elapsed_time(e))
    times.sort()
    ms = times[len(times) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**30
    row = {"model": name, "batch": batch, "mode": mode, "ms": ms, "samples_per_s": batch / ms * 1e3,
           "peak_gib": peak, "loss": float(loss), "params": sum(p.numel() for p in params),
           "gpu": torch.cuda.get_device_name(0), "optimizer": "AdamW fused" if fused else "AdamW foreach"}
    print(f"{name:6} batch {batch:3} {mode:5} {ms:9.2f} ms/step  {row['samples_per_s']:8.1f} samples/s  "
          f"peak {peak:6.1f} GiB  loss {row['loss']:.4f}", flush=True)
    del opt, model, params, x1
    torch.cuda.empty_cache()
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="B/1,XL/1")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--modes", default="bf16,fp32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--fused", action="store_true", help="fused AdamW instead of the default foreach")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("train_step_bench.py needs a CUDA GPU")
    lightningdit.Attention.forward = sdpa_forward
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}: FM training step (forward, loss, "
          f"backward, AdamW), SDPA attention, eager, median of {args.steps} after {args.warmup} warm-up", flush=True)
    rows = []
    for name in args.models.split(","):
        for mode in args.modes.split(","):
            try:
                rows.append(bench(name, args.batch, mode, args.steps, args.warmup, args.fused))
            except torch.cuda.OutOfMemoryError as e:
                print(f"{name:6} batch {args.batch:3} {mode:5} out of memory: {str(e).splitlines()[0]}", flush=True)
                torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "torch": torch.__version__, "time": time.time()}, f, indent=1)


if __name__ == "__main__":
    main()
