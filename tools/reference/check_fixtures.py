"""Verifies a fixture folder written by make_fixtures.py with numpy only (no torch), the way the Java tests will use it:
reads the files with the torch-free readers, regenerates the Philox weights, recomputes every stored output with the
naive numpy transcription of the network (lightningdit_numpy.py) and its own sampler loops, and checks the two
checkpoint files through the facm-spec §8 loader rule.

Usage: python3 tools/reference/check_fixtures.py FIXTURE_DIR     (about a minute on 2 cores)
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixture_readers as fr  # noqa: E402
import philox_weights  # noqa: E402
from lightningdit_config import LightningDiTConfig  # noqa: E402
from lightningdit_numpy import numpy_forward  # noqa: E402

# Outputs are float64 results stored as float32: they must agree with a float64 recomputation to float32 rounding.
OUTPUT_REL_TOL = 1e-6


def rel_err(got, ref):
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def expect_close(what, got, ref, tol=OUTPUT_REL_TOL):
    err = rel_err(np.asarray(got, np.float64), np.asarray(ref, np.float64))
    status = "ok" if err <= tol else "FAIL"
    print(f"  {what:<44} max|err|/max|ref| = {err:.2e}  {status}", flush=True)
    if err > tol:
        raise SystemExit(f"{what}: relative error {err:.3e} > {tol:.1e}")


def expect_bits(what, got, want):
    got, want = np.ascontiguousarray(got, np.float32), np.ascontiguousarray(want, np.float32)
    if got.shape != want.shape or not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
        raise SystemExit(f"{what}: not bit-identical (shapes {got.shape} vs {want.shape})")


def forward_all(cfg, w64, x, t, y, traces=None):
    out = []
    for b in range(x.shape[0]):
        trace = {} if traces is not None else None
        out.append(numpy_forward(cfg, w64, x[b].astype(np.float64), float(t[b]), int(y[b]), trace=trace))
        if traces is not None:
            traces.append(trace)
    return np.stack(out)


def check_forward_file(path, stored_weights):
    tensors, meta = fr.read_safetensors(path)
    cfg = LightningDiTConfig.from_dict(json.loads(meta["config"]))
    seed = int(meta["seed"])
    weights = philox_weights.model_weights(cfg, seed)
    name = os.path.basename(path)
    if stored_weights:
        for key, value in weights.items():
            expect_bits(f"{name}: {key}", tensors[key], value)
        print(f"  {name}: {len(weights)} stored weights == Philox scheme seed {seed}, bit-exact")
    else:
        keys, head = philox_weights.weight_head(weights, tensors["debug.weight_head"].shape[1])
        if json.loads(meta["weight_keys"]) != keys:
            raise SystemExit(f"{name}: weight_keys metadata differs from the scheme's key order")
        expect_bits(f"{name}: debug.weight_head", tensors["debug.weight_head"], head)
        print(f"  {name}: regenerated weights (seed {seed}) match debug.weight_head for {len(keys)} tensors")
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    traces = []
    out = forward_all(cfg, w64, tensors["input.x"], tensors["input.t"], tensors["input.y"], traces)
    expect_close(f"{name}: output.f", tensors["output.f"], out)
    expect_close(f"{name}: debug.c", tensors["debug.c"], np.stack([tr["c"] for tr in traces]))
    expect_close(f"{name}: debug.h0 (sample 0)", tensors["debug.h0"][0], traces[0]["h0"])
    return cfg, weights


def velocity(cfg, w64, x, t, y, cfg_scale=1.0, low=0.0, high=1.0, fm_time=False):
    """Per-sample velocity with the Euler sampler's CFG rule (guidance when w > 1 and low <= t <= high)."""
    tau = 2.0 - t if fm_time else t
    taus = np.full(x.shape[0], tau, dtype=np.float64)
    cond = forward_all(cfg, w64, x, taus, y)
    if cfg_scale > 1.0 and low <= t <= high:
        uncond = forward_all(cfg, w64, x, taus, np.full_like(y, cfg.null_class))
        return uncond + cfg_scale * (cond - uncond)
    return cond


def check_sampler_file(path, tiny_weights):
    tensors, meta = fr.read_safetensors(path)
    cfg = LightningDiTConfig.from_dict(json.loads(meta["config"]))
    euler = json.loads(meta["euler"])
    w64 = {k: v.astype(np.float64) for k, v in tiny_weights.items()}
    z, eps, y = tensors["input.z"].astype(np.float64), tensors["input.noise1"].astype(np.float64), tensors["input.y"]
    zeros = np.zeros(z.shape[0])
    nfe1 = z + forward_all(cfg, w64, z, zeros, y)
    expect_close("tiny_sampler: output.nfe1", tensors["output.nfe1"], nfe1)
    x_half = 0.5 * nfe1 + 0.5 * eps
    nfe2 = x_half + 0.5 * forward_all(cfg, w64, x_half, zeros + 0.5, y)
    expect_close("tiny_sampler: output.nfe2", tensors["output.nfe2"], nfe2)
    if euler["shift"] != 1.0 or euler["heun"]:
        raise SystemExit("check_fixtures.py only re-derives the Euler fixture for shift 1.0 without Heun")
    for key, fm in (("output.euler4", False), ("output.euler4_fm", True)):
        x = z.copy()
        n = euler["steps"]
        for k in range(n):
            t, t_next = k / n, (k + 1) / n
            x = x + (t_next - t) * velocity(cfg, w64, x, t, y, euler["cfg_scale"], euler["guidance_low"],
                                            euler["guidance_high"], fm)
        expect_close(f"tiny_sampler: {key}", tensors[key], x)


def check_checkpoints(folder, tiny_weights):
    want = tiny_weights
    for name, bf16 in (("tiny_ema.pt", False), ("tiny_emas.pt", True)):
        checkpoint = fr.read_torch_checkpoint(os.path.join(folder, name))
        which, state = fr.select_weights(checkpoint)
        if set(state) != set(want):
            raise SystemExit(f"{name}: loader rule took {which} with keys {sorted(set(state) ^ set(want))[:5]} off")
        for key, value in want.items():
            expected = fr.bf16_bits_to_f32(fr.f32_to_bf16_bits(value)) if bf16 else value
            tensor = state[key]
            if tensor.storage != ("BFloat16Storage" if bf16 else "FloatStorage"):
                raise SystemExit(f"{name}: {key} stored as {tensor.storage}")
            expect_bits(f"{name}: {key}", tensor.values, expected)
        model = fr.strip_prefix(checkpoint["model"], "module.")
        if np.array_equal(model["blocks.0.attn.qkv.weight"].values, state["blocks.0.attn.qkv.weight"].values):
            raise SystemExit(f"{name}: 'model' holds the same weights as the EMA, so the loader rule is not tested")
        print(f"  {name}: loader rule takes {which}; {len(want)} tensors == Philox seed 1234"
              f"{' rounded to bf16' if bf16 else ''}, bit-exact; 'model' differs")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    folder = sys.argv[1]
    print(f"checking fixtures in {folder}", flush=True)
    _, tiny = check_forward_file(os.path.join(folder, "tiny_forward.safetensors"), stored_weights=True)
    check_forward_file(os.path.join(folder, "b1_forward.safetensors"), stored_weights=False)
    check_sampler_file(os.path.join(folder, "tiny_sampler.safetensors"), tiny)
    check_checkpoints(folder, tiny)
    print("all fixtures verified")


if __name__ == "__main__":
    main()
