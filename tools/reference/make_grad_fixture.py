"""Writes tiny_fm_grad.safetensors: the stage-1 flow-matching loss (facm-spec.md §4) of a tiny LightningDiT and its
parameter gradients, computed in float64 with PyTorch autograd, for the Java whole-model gradient test
(src/test/java/facm/autograd/GradientFixtureChecks.java).

Usage (GPU host: PyTorch + numpy + safetensors, no network; CPU works too, only slower):
    PYTHONUNBUFFERED=1 python3 tools/reference/make_grad_fixture.py OUTDIR [--device auto|cuda|cpu]
then copy OUTDIR/tiny_fm_grad.safetensors to src/test/resources/fixtures/.

Model: the tiny preset with 4 input channels on 16×16 inputs (config "tiny-c4": depth 2, D 64, 4 heads, patch 2,
64 tokens, 10 classes, qk-norm and RoPE on). Four channels, because with the preset's single channel the cosine term
of the loss is ±1 per pixel and its gradient vanishes, which would leave that part of the backward untested.
Weights: Philox scheme v1, seed 1234 (README.md), NOT stored. Batch of 4 with fixed inputs (stored):
x1, eps ~ N(0,1) from seeded generators, t = [0.15, 0.6, 0.35, 0.9], y = [3, 10 (null), 7, 0].
Objective, exactly as FlowMatchingObjective.loss: tau = t for the first half, 2 − t for the second (computed in
float32 like the Java code, then widened); x_t = t·x1 + (1 − t)·eps; u = x1 − eps; F = model(x_t, tau, y);
l_b = mean_CHW (F − u)² + mean_HW (1 − cos_C(F, u)), cos_C(p, u) = p·u / (max(‖p‖, 1e-8)·max(‖u‖, 1e-8));
loss = mean_b l_b.

Stored (float32 unless noted): input.x1, input.eps (4,4,16,16), input.t (4,), input.y (4,) int32;
output.loss (1,), output.per_sample (4,), output.mse (1,) = mean (F − u)² over the batch;
for every trainable parameter key K: grad_head.K = the first 16 values of ∂loss/∂K (row-major flattening of the
state-dict shape, fewer if K has fewer), grad_norm.K (1,) = its L2 norm. Metadata: config (JSON), seed, note,
weight_scheme, torch, device, loss_fp64 (repr of the float64 loss), fp32_vs_fp64 (JSON: the float32 model's loss
error and worst per-key gradient errors, a guide for the Java tolerances), bf16_autocast_loss.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import torch
except ImportError as e:  # pragma: no cover - environment problem, explain it
    raise SystemExit(f"make_grad_fixture.py needs torch: {e}")
try:
    from safetensors.torch import save_file
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"make_grad_fixture.py needs the safetensors package: {e}")

import lightningdit as ld
import philox_weights
from lightningdit_config import preset

SEED = 1234
INPUT_SEED = 20251127
HEAD = 16
SIZE_LIMIT = 200_000
T_VALUES = [0.15, 0.6, 0.35, 0.9]
Y_VALUES = [3, 10, 7, 0]


def log(msg):
    print(msg, flush=True)


def pick_device(name):
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise SystemExit("--device cuda asked for, but torch.cuda.is_available() is False")
    log("WARNING: no CUDA device; computing on the CPU (same numbers up to float64 rounding)")
    return torch.device("cpu")


def fm_loss(pred, target):
    """Per-sample l_b and the batch MSE, in pred's dtype (the formula of TrainingOps.flowMatchingLoss)."""
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    dot = (pred * target).sum(dim=1)
    norm_p = pred.pow(2).sum(dim=1).sqrt().clamp_min(1e-8)
    norm_u = target.pow(2).sum(dim=1).sqrt().clamp_min(1e-8)
    cos = dot / (norm_p * norm_u)
    per_sample = mse + (1 - cos).flatten(1).mean(dim=1)
    return per_sample, mse.mean()


def inputs(cfg):
    shape = (4, cfg.in_channels, cfg.input_size, cfg.input_size)
    gen = torch.Generator().manual_seed(INPUT_SEED)
    x1 = torch.randn(*shape, generator=gen, dtype=torch.float32)
    eps = torch.randn(*shape, generator=gen, dtype=torch.float32)
    t = torch.tensor(T_VALUES, dtype=torch.float32)
    y = torch.tensor(Y_VALUES, dtype=torch.int32)
    half = t.shape[0] // 2
    tau = torch.cat([t[:half], 2 - t[half:]])  # float32 arithmetic, as in the Java objective
    return x1, eps, t, tau, y


def loss_and_grads(cfg, weights, dtype, device, x1, eps, t, tau, y, autocast=False):
    """The objective and its parameter gradients with a model in `dtype` (float64 CPU results)."""
    model = ld.build(cfg, weights=weights, dtype=dtype, device=device)
    model.train()
    for name, p in model.named_parameters():
        p.requires_grad_(name != "pos_embed")
    tb = t.to(device, dtype)[:, None, None, None]
    x1d, epsd = x1.to(device, dtype), eps.to(device, dtype)
    xt = tb * x1d + (1 - tb) * epsd
    target = x1d - epsd
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        pred = model(xt, tau.to(device, dtype), y.to(device))
    per_sample, mse = fm_loss(pred.to(dtype), target)
    loss = per_sample.mean()
    loss.backward()
    grads = {name: p.grad.detach().to("cpu", torch.float64) for name, p in model.named_parameters()
             if p.requires_grad}
    return (float(loss), per_sample.detach().to("cpu", torch.float64), float(mse)), grads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    args = ap.parse_args()
    device = pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.out_dir, exist_ok=True)

    cfg = preset("tiny", in_channels=4, input_size=16, name="tiny-c4")
    weights = philox_weights.model_weights(cfg, SEED)
    x1, eps, t, tau, y = inputs(cfg)
    (loss, per_sample, mse), grads = loss_and_grads(cfg, weights, torch.float64, device, x1, eps, t, tau, y)
    log(f"tiny-c4 FM loss (float64) = {loss!r}, per sample {per_sample.tolist()}, mse {mse:.6f}")

    (loss32, _, _), grads32 = loss_and_grads(cfg, weights, torch.float32, device, x1, eps, t, tau, y)
    worst = max((float((grads32[k] - g).abs().max() / g.abs().max().clamp_min(1e-30)), k) for k, g in grads.items())
    fp32 = {"loss_abs_err": abs(loss32 - loss), "worst_grad_rel_err": worst[0], "worst_grad_key": worst[1]}
    log(f"fp32 model vs float64: loss error {fp32['loss_abs_err']:.3e}, worst gradient max|err|/max|ref| "
        f"{worst[0]:.3e} ({worst[1]})")
    bf16_loss = None
    try:
        (bf16_loss, _, _), _ = loss_and_grads(cfg, weights, torch.float32, device, x1, eps, t, tau, y, autocast=True)
        log(f"bf16 autocast loss {bf16_loss:.6f} (float64 {loss:.6f}, difference {abs(bf16_loss - loss):.3e})")
    except Exception as e:  # a precision mode the host cannot do is reported, not fatal
        log(f"bf16 autocast run failed: {type(e).__name__}: {e}")

    tensors = {"input.x1": x1, "input.eps": eps, "input.t": t, "input.y": y,
               "output.loss": torch.tensor([loss], dtype=torch.float32),
               "output.per_sample": per_sample.float(),
               "output.mse": torch.tensor([mse], dtype=torch.float32)}
    for key in sorted(grads):
        g = grads[key].flatten()
        tensors[f"grad_head.{key}"] = g[:HEAD].float().contiguous()
        tensors[f"grad_norm.{key}"] = g.norm().reshape(1).float()
    missing = set(philox_weights.model_weights(cfg, SEED)) - set(grads) - {"pos_embed", "feat_rope.freqs_cos",
                                                                           "feat_rope.freqs_sin"}
    if missing:
        raise SystemExit(f"no gradient for trainable keys {sorted(missing)}")
    note = ("stage-1 FM loss of LightningDiT tiny-c4 (Philox weights v1 seed 1234, not stored) and its parameter "
            "gradients in float64: grad_head.K = first 16 values, grad_norm.K = L2 norm; see make_grad_fixture.py")
    meta = {"config": cfg.to_json(), "seed": str(SEED), "note": note, "weight_scheme": "philox-v1",
            "torch": torch.__version__, "device": str(device), "loss_fp64": repr(loss),
            "fp32_vs_fp64": json.dumps(fp32), "bf16_autocast_loss": repr(bf16_loss),
            "generator": "tools/reference/make_grad_fixture.py"}
    path = os.path.join(args.out_dir, "tiny_fm_grad.safetensors")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata=meta)
    os.chmod(path, 0o644)
    size = os.path.getsize(path)
    log(f"wrote {path} ({size} bytes, {len(tensors)} tensors)")
    if size > SIZE_LIMIT:
        raise SystemExit(f"{path} is {size} bytes, over the {SIZE_LIMIT}-byte budget for this fixture")


if __name__ == "__main__":
    main()
