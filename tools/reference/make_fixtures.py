"""Writes the reference fixtures the Java tests compare against (see README.md for what each file holds).

Usage (GPU host, PyTorch + numpy + safetensors, no network):
    PYTHONUNBUFFERED=1 python3 tools/reference/make_fixtures.py OUTDIR [--device auto|cuda|cpu]

Reference outputs come from the model run in float64 (on CUDA when available), stored as float32. The script also
runs the same forwards in fp32 (IEEE, no TF32), TF32 and bf16 autocast and prints their error against float64, as a
guide for the Java tests' tolerances. Deterministic: same files on every run, up to the last bit of fp64 GPU math.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - environment problem, explain it
    raise SystemExit(f"make_fixtures.py needs numpy and torch: {e}")
try:
    from safetensors.torch import save_file
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"make_fixtures.py needs the safetensors package: {e}")

import fixture_checkpoints
import lightningdit as ld
import philox_weights
import samplers
from lightningdit_config import preset

TINY_SEED = 1234
B1_SEED = 99
INPUT_SEED = 20251126
SIZE_BUDGET = 5_000_000


def log(msg):
    print(msg, flush=True)


def pick_device(name):
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise SystemExit("--device cuda asked for, but torch.cuda.is_available() is False "
                         f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
    log("WARNING: no CUDA device; computing the float64 references on the CPU (same numbers up to rounding)")
    return torch.device("cpu")


def randn(shape, seed):
    """Inputs from a seeded CPU generator (device-independent), float32."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def run_forward(model, x, t, y, dtype, device, mode="ieee", trace=None):
    """Forward in `dtype` on `device`; mode 'tf32' allows TF32 GEMMs, 'bf16' uses bf16 autocast. Returns float64 CPU."""
    torch.set_float32_matmul_precision("high" if mode == "tf32" else "highest")
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=(mode == "bf16")):
            out = model(x.to(device, dtype), t.to(device, dtype), y.to(device), trace=trace)
        return out.to("cpu", torch.float64)
    finally:
        torch.set_float32_matmul_precision("highest")


def error_stats(got, ref):
    diff = (got - ref).abs()
    scale = float(ref.abs().max())
    return {"max_abs_err": float(diff.max()), "max_abs_ref": scale, "rel_err": float(diff.max()) / scale,
            "rms_rel_err": float(diff.pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())}


def precision_table(name, cfg, weights, x, t, y, ref, device):
    """fp32 / TF32 / bf16-autocast forward errors against the float64 reference; never fails the run."""
    rows = {}
    model32 = ld.build(cfg, weights=weights, dtype=torch.float32, device=device)
    modes = ["ieee", "tf32", "bf16"] if device.type == "cuda" else ["ieee", "bf16"]
    for mode in modes:
        try:
            rows[mode] = error_stats(run_forward(model32, x, t, y, torch.float32, device, mode), ref)
        except Exception as e:  # a precision mode the host cannot do is reported, not fatal
            log(f"  {name}: {mode} forward failed: {type(e).__name__}: {e}")
    for mode, s in rows.items():
        log(f"  {name:<12} fp32 model, {mode:<4} vs fp64: max|err| {s['max_abs_err']:.3e}  max|ref| "
            f"{s['max_abs_ref']:.3f}  rel {s['rel_err']:.3e}  rms-rel {s['rms_rel_err']:.3e}")
    return rows


def metadata(cfg, seed, note, extra=None):
    meta = {"config": cfg.to_json(), "seed": str(seed), "note": note, "weight_scheme": "philox-v1",
            "torch": torch.__version__, "generator": "tools/reference/make_fixtures.py"}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    return meta


def save(path, tensors, meta):
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(tensors, path, metadata=meta)
    os.chmod(path, 0o644)
    return tensors


def tiny_forward(out_dir, device, report):
    cfg = preset("tiny")
    weights = philox_weights.model_weights(cfg, TINY_SEED)
    x = randn((3, cfg.in_channels, cfg.input_size, cfg.input_size), INPUT_SEED)
    t = torch.tensor([0.0, 0.37, 1.6], dtype=torch.float32)  # 1.6 = 2 − 0.4, an FM-branch time
    y = torch.tensor([3, cfg.null_class, 7], dtype=torch.int32)
    model64 = ld.build(cfg, weights=weights, dtype=torch.float64, device=device)
    trace = {}
    ref = run_forward(model64, x, t, y, torch.float64, device, trace=trace)
    errors = precision_table("tiny", cfg, weights, x, t, y, ref, device)
    tensors = {k: torch.from_numpy(v) for k, v in weights.items()}
    tensors.update({"input.x": x, "input.t": t, "input.y": y, "output.f": ref.float(),
                    "debug.c": trace["c"].float(), "debug.h0": trace["h0"][:1].float()})
    note = ("LightningDiT tiny, weights stored (official keys) = Philox scheme v1 seed 1234; output.f = float64 "
            "forward stored as float32; debug.c = conditioning (B,D); debug.h0 = patch embed + pos_embed, sample 0")
    path = os.path.join(out_dir, "tiny_forward.safetensors")
    save(path, tensors, metadata(cfg, TINY_SEED, note, {"device": str(device), "fp32_vs_fp64": errors}))
    report.append((path, float(ref.abs().max())))


def b1_forward(out_dir, device, report):
    cfg = preset("B/1", depth=2, name="B/1-depth2")
    started = time.time()
    weights = philox_weights.model_weights(cfg, B1_SEED)
    log(f"  B/1-depth2 Philox weights generated in {time.time() - started:.1f} s")
    model64 = ld.build(cfg, weights=weights, dtype=torch.float64, device=device)
    keys, head = philox_weights.weight_head(weights, 8)
    x = randn((2, cfg.in_channels, cfg.input_size, cfg.input_size), INPUT_SEED + 1)
    t = torch.tensor([0.25, 1.75], dtype=torch.float32)  # 1.75 = 2 − 0.25
    y = torch.tensor([207, cfg.null_class], dtype=torch.int32)
    trace = {}
    ref = run_forward(model64, x, t, y, torch.float64, device, trace=trace)
    errors = precision_table("B/1-depth2", cfg, weights, x, t, y, ref, device)
    tensors = {"input.x": x, "input.t": t, "input.y": y, "output.f": ref.float(), "debug.c": trace["c"].float(),
               "debug.h0": trace["h0"][:1].float(), "debug.weight_head": torch.from_numpy(head)}
    note = ("LightningDiT-B/1 shapes with depth 2; NO weights stored: regenerate them with the Philox scheme v1, "
            "seed 99 (see README). debug.weight_head[k] = first 8 values of random tensor k (keys in metadata "
            "weight_keys, sorted order); debug.c = conditioning (B,D); debug.h0 = tokens after patch embed + "
            "pos_embed, sample 0 only")
    path = os.path.join(out_dir, "b1_forward.safetensors")
    save(path, tensors, metadata(cfg, B1_SEED, note, {"device": str(device), "fp32_vs_fp64": errors,
                                                      "weight_keys": keys}))
    report.append((path, float(ref.abs().max())))


def tiny_sampler(out_dir, device, report):
    cfg = preset("tiny")
    weights = philox_weights.model_weights(cfg, TINY_SEED)
    model64 = ld.build(cfg, weights=weights, dtype=torch.float64, device=device)
    model32 = ld.build(cfg, weights=weights, dtype=torch.float32, device=device)
    shape = (4, cfg.in_channels, cfg.input_size, cfg.input_size)
    z, noise1 = randn(shape, INPUT_SEED + 2), randn(shape, INPUT_SEED + 3)
    y = torch.tensor([0, 5, cfg.null_class, 9], dtype=torch.int32)
    euler = dict(steps=4, null_class=cfg.null_class, cfg_scale=1.5, guidance_low=0.125, guidance_high=1.0,
                 shift=1.0, heun=False)
    runs = {"output.nfe1": lambda m, zz: samplers.consistency_sample(m, zz, y.to(device), 1),
            "output.nfe2": lambda m, zz: samplers.consistency_sample(m, zz, y.to(device), 2, [noise1.to(device)]),
            "output.euler4": lambda m, zz: samplers.euler_sample(m, zz, y.to(device), **euler),
            "output.euler4_fm": lambda m, zz: samplers.euler_sample(m, zz, y.to(device), fm_time=True, **euler)}
    tensors = {"input.z": z, "input.noise1": noise1, "input.y": y}
    errors = {}
    with torch.no_grad():
        for name, run in runs.items():
            ref = run(model64, z.to(device, torch.float64)).cpu()
            tensors[name] = ref.float()
            errors[name] = error_stats(run(model32, z.to(device, torch.float32)).cpu(), ref)
            log(f"  tiny sampler {name:<17} fp32 model vs fp64: rel {errors[name]['rel_err']:.3e} "
                f"(max|ref| {errors[name]['max_abs_ref']:.3f})")
    sampler_settings = {
        "output.nfe1": "consistency, 1 step: z + F(z, 0, y)",
        "output.nfe2": "consistency, 2 steps, re-noise with input.noise1 at t = 0.5",
        "output.euler4": "Euler 4 steps, grid k/4, cfg 1.5 on [0.125, 1] (null class 10), shift 1.0, no Heun",
        "output.euler4_fm": "as euler4 but the network time input is 2 - t (FM branch); interval tested on t"}
    note = ("tiny sampler fixture; weights NOT stored: they are tiny_forward.safetensors' (Philox scheme v1 seed "
            "1234); state in float64, model in float64; outputs stored as float32")
    path = os.path.join(out_dir, "tiny_sampler.safetensors")
    save(path, tensors, metadata(cfg, TINY_SEED, note, {"device": str(device), "samplers": sampler_settings,
                                                        "euler": euler, "fp32_vs_fp64": errors}))
    report.append((path, max(float(tensors[k].abs().max()) for k in runs)))


def checkpoints(out_dir, report):
    cfg = preset("tiny")
    ema_path = os.path.join(out_dir, "tiny_ema.pt")
    emas_path = os.path.join(out_dir, "tiny_emas.pt")
    info = {"tiny_ema.pt": fixture_checkpoints.write_tiny_ema(cfg, ema_path),
            "tiny_emas.pt": fixture_checkpoints.write_tiny_emas(cfg, emas_path)}
    fixture_checkpoints.check_round_trip(cfg, ema_path, emas_path)
    with open(os.path.join(out_dir, "checkpoints.json"), "w") as f:
        json.dump({"config": cfg.to_dict(), "files": info}, f, indent=2, sort_keys=True)
    max_weight = float(np.abs(np.concatenate([v.reshape(-1) for v in
                                              philox_weights.model_weights(cfg, TINY_SEED).values()])).max())
    report.append((ema_path, max_weight))
    report.append((emas_path, max_weight))


def summary(out_dir, report, started):
    lines = [f"{'file':<28} {'bytes':>10}  max|output| (for .pt: max|weight|)"]
    total = 0
    for path, biggest in report:
        size = os.path.getsize(path)
        total += size
        lines.append(f"{os.path.basename(path):<28} {size:>10}  {biggest:.4f}")
    lines.append(f"{'total':<28} {total:>10}  (budget {SIZE_BUDGET})")
    lines.append(f"done in {time.time() - started:.1f} s")
    text = "\n".join(lines)
    log(text)
    with open(os.path.join(out_dir, "summary.txt"), "w") as f:
        f.write(text + "\n")
    if total > SIZE_BUDGET:
        log(f"WARNING: fixtures take {total} bytes, over the {SIZE_BUDGET}-byte budget")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    args = parser.parse_args()
    started = time.time()
    device = pick_device(args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    log(f"make_fixtures: torch {torch.__version__}, numpy {np.__version__}, device {device} ({name}), "
        f"out {os.path.abspath(args.out_dir)}")
    torch.set_float32_matmul_precision("highest")
    report = []
    for step, fn in (("tiny_forward", lambda: tiny_forward(args.out_dir, device, report)),
                     ("b1_forward", lambda: b1_forward(args.out_dir, device, report)),
                     ("tiny_sampler", lambda: tiny_sampler(args.out_dir, device, report)),
                     ("checkpoints", lambda: checkpoints(args.out_dir, report))):
        log(f"[{time.time() - started:5.1f} s] {step}")
        fn()
    summary(args.out_dir, report, started)


if __name__ == "__main__":
    main()
