#!/usr/bin/env python3
"""Writes tiny_jvp.safetensors: the whole-network forward-mode derivative of a tiny LightningDiT computed with
torch.func.jvp in float64 (facm-spec.md §5.2d, §6.1): (F, Ḟ) = JVP of (x, τ) ↦ F(x, τ, y) at (x, t) with tangents
(ẋ, τ̇). For the Java whole-network JVP tests.

Usage (GPU host; CPU works too): PYTHONUNBUFFERED=1 python3 tools/reference/make_jvp_fixture.py OUTDIR [--device ...]
then copy OUTDIR/tiny_jvp.safetensors to src/test/resources/fixtures/.

Model: "tiny-c4" as make_grad_fixture.py (4 channels, 16×16, patch 2, 64 tokens; Philox weights v1 seed 1234, not
stored). Batch 3 (stored, float32): input.x, input.xdot ~ N(0,1); input.t = [0.2, 0.55, 0.9]; input.tdot =
[1, 1, 0.5]; input.y = [3, 10 (null), 7] int32. Outputs (float64 computed, stored float32): output.f, output.fdot.
Metadata: config, seed, fp32_vs_fp64 (the float32 model's errors, a guide for the Java tolerances).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import lightningdit as ld  # noqa: E402
import philox_weights  # noqa: E402
from lightningdit_config import preset  # noqa: E402
from make_grad_fixture import pick_device  # noqa: E402

SEED = 1234
INPUT_SEED = 20251128
SIZE_LIMIT = 80_000


def jvp(cfg, weights, dtype, device, x, xdot, t, tdot, y):
    model = ld.build(cfg, weights=weights, dtype=dtype, device=device)
    f, fdot = torch.func.jvp(lambda xx, tt: model(xx, tt, y.to(device)),
                             (x.to(device, dtype), t.to(device, dtype)),
                             (xdot.to(device, dtype), tdot.to(device, dtype)))
    return f.detach().to("cpu", torch.float64), fdot.detach().to("cpu", torch.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    args = ap.parse_args()
    device = pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    os.makedirs(args.out_dir, exist_ok=True)
    cfg = preset("tiny", in_channels=4, input_size=16, name="tiny-c4")
    weights = philox_weights.model_weights(cfg, SEED)
    gen = torch.Generator().manual_seed(INPUT_SEED)
    shape = (3, cfg.in_channels, cfg.input_size, cfg.input_size)
    x = torch.randn(*shape, generator=gen, dtype=torch.float32)
    xdot = torch.randn(*shape, generator=gen, dtype=torch.float32)
    t = torch.tensor([0.2, 0.55, 0.9], dtype=torch.float32)
    tdot = torch.tensor([1.0, 1.0, 0.5], dtype=torch.float32)
    y = torch.tensor([3, 10, 7], dtype=torch.int32)
    f, fdot = jvp(cfg, weights, torch.float64, device, x, xdot, t, tdot, y)
    f32, fdot32 = jvp(cfg, weights, torch.float32, device, x, xdot, t, tdot, y)
    err = {"f": float((f32 - f).abs().max() / f.abs().max()),
           "fdot": float((fdot32 - fdot).abs().max() / fdot.abs().max())}
    print(f"tiny-c4 JVP: max|F| {float(f.abs().max()):.4f}, max|Fdot| {float(fdot.abs().max()):.4f}; fp32 vs float64 "
          f"max|err|/max|ref|: F {err['f']:.3e}, Fdot {err['fdot']:.3e}", flush=True)
    tensors = {"input.x": x, "input.xdot": xdot, "input.t": t, "input.tdot": tdot, "input.y": y,
               "output.f": f.float(), "output.fdot": fdot.float()}
    meta = {"config": cfg.to_json(), "seed": str(SEED), "weight_scheme": "philox-v1", "torch": torch.__version__,
            "device": str(device), "fp32_vs_fp64": json.dumps(err), "generator": "tools/reference/make_jvp_fixture.py",
            "note": "torch.func.jvp of (x, tau) -> F(x, tau, y) in float64 with tangents (xdot, tdot); weights not stored"}
    path = os.path.join(args.out_dir, "tiny_jvp.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)
    os.chmod(path, 0o644)
    size = os.path.getsize(path)
    print(f"wrote {path} ({size} bytes)", flush=True)
    if size > SIZE_LIMIT:
        raise SystemExit(f"{path} is {size} bytes, over the {SIZE_LIMIT}-byte budget for this fixture")


if __name__ == "__main__":
    main()
