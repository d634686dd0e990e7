"""Self-test of lightningdit.py: state-dict inventory, layout helpers, and the whole forward against a second,
deliberately naive transcription of facm-spec.md §3.2 in numpy (per sample, per token, per head loops).

Run: python3 tools/reference/lightningdit.py   (or this file). CPU only, a few seconds.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

import lightningdit as ld
from lightningdit_config import parameter_inventory, preset
from philox_weights import model_weights


def _silu(a):
    return a / (1.0 + np.exp(-a))


def _rms(v, w, eps):
    return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + eps) * w


def numpy_forward(cfg, w, x, t, y, r=None):
    """One sample, float64, written from the spec text: x (C, H, W), scalar t, int y → (C, H, W)."""
    d, p, g, dh, nh, fh = cfg.hidden, cfg.patch, cfg.grid, cfg.head_dim, cfg.heads, cfg.mlp_hidden
    eps = cfg.norm_eps
    w_pe = w["x_embedder.proj.weight"].reshape(d, -1)
    h = np.stack([w_pe @ x[:, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(-1) + w["x_embedder.proj.bias"]
                  for i in range(g) for j in range(g)])
    h = h + w["pos_embed"][0]

    def time_mlp(prefix, tau):
        half = cfg.time_freq_dim // 2
        f = np.exp(-math.log(cfg.time_max_period) * np.arange(half) / half)
        e = np.concatenate([np.cos(tau * f), np.sin(tau * f)])
        a = w[prefix + ".mlp.0.weight"] @ e + w[prefix + ".mlp.0.bias"]
        return w[prefix + ".mlp.2.weight"] @ _silu(a) + w[prefix + ".mlp.2.bias"]

    c = time_mlp("t_embedder", t) + w["y_embedder.embedding_table.weight"][y]
    if cfg.aux_time:
        c = c + time_mlp("r_embedder", r)
    for blk in range(cfg.depth):
        pre = f"blocks.{blk}."
        m = (w[pre + "adaLN_modulation.1.weight"] @ _silu(c) + w[pre + "adaLN_modulation.1.bias"]).reshape(6, d)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = m
        a = _rms(h, w[pre + "norm1.weight"], eps) * (1 + scale_a) + shift_a
        qkv = a @ w[pre + "attn.qkv.weight"].T + w[pre + "attn.qkv.bias"]
        heads_out = np.zeros((cfg.tokens, d))
        for hh in range(nh):
            q = qkv[:, hh * dh:(hh + 1) * dh]
            k = qkv[:, d + hh * dh:d + (hh + 1) * dh]
            v = qkv[:, 2 * d + hh * dh:2 * d + (hh + 1) * dh]
            if cfg.qk_norm:
                q = _rms(q, w[pre + "attn.q_norm.weight"], eps)
                k = _rms(k, w[pre + "attn.k_norm.weight"], eps)
            if cfg.rope:
                cos, sin = w["feat_rope.freqs_cos"], w["feat_rope.freqs_sin"]
                q2, k2 = q.copy(), k.copy()
                for pair in range(dh // 2):
                    e0, e1 = 2 * pair, 2 * pair + 1
                    cs, sn = cos[:, e0], sin[:, e0]
                    q2[:, e0] = q[:, e0] * cs - q[:, e1] * sn
                    q2[:, e1] = q[:, e1] * cs + q[:, e0] * sn
                    k2[:, e0] = k[:, e0] * cs - k[:, e1] * sn
                    k2[:, e1] = k[:, e1] * cs + k[:, e0] * sn
                q, k = q2, k2
            s = q @ k.T / math.sqrt(dh)
            prob = np.exp(s - s.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            heads_out[:, hh * dh:(hh + 1) * dh] = prob @ v
        h = h + gate_a * (heads_out @ w[pre + "attn.proj.weight"].T + w[pre + "attn.proj.bias"])
        b = _rms(h, w[pre + "norm2.weight"], eps) * (1 + scale_m) + shift_m
        gu = b @ w[pre + "mlp.w12.weight"].T + w[pre + "mlp.w12.bias"]
        hidden = _silu(gu[:, :fh]) * gu[:, fh:]
        h = h + gate_m * (hidden @ w[pre + "mlp.w3.weight"].T + w[pre + "mlp.w3.bias"])
    fm = w["final_layer.adaLN_modulation.1.weight"] @ _silu(c) + w["final_layer.adaLN_modulation.1.bias"]
    shift, scale = fm[:d], fm[d:]
    o = (_rms(h, w["final_layer.norm_final.weight"], eps) * (1 + scale) + shift) @ w["final_layer.linear.weight"].T
    o = o + w["final_layer.linear.bias"]
    out = np.zeros((cfg.out_channels, cfg.input_size, cfg.input_size))
    for i in range(g):
        for j in range(g):
            for pr in range(p):
                for pc in range(p):
                    for ch in range(cfg.out_channels):
                        out[ch, i * p + pr, j * p + pc] = o[i * g + j, (pr * p + pc) * cfg.out_channels + ch]
    return out


def check_inventory():
    configs = [preset("tiny"), preset("small"), preset("B/1", depth=1), preset("XL/2", depth=1),
               preset("tiny", aux_time=True), preset("tiny", qk_norm=False), preset("tiny", rope=False)]
    for cfg in configs:
        with torch.device("meta"):
            model = ld.LightningDiT(cfg)
        got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        want = dict(parameter_inventory(cfg))
        assert got == want, f"{cfg.name}: state_dict differs from the inventory: extra {set(got) - set(want)}, " \
                            f"missing {set(want) - set(got)}, shapes {[k for k in got if got[k] != want.get(k)]}"
    print(f"  state_dict keys and shapes match the §3.3 inventory for {len(configs)} configs")


def check_layout():
    gen = torch.Generator().manual_seed(5)
    for p, c, size, d in ((1, 4, 6, 8), (2, 3, 8, 5)):
        x = torch.randn(2, c, size, size, generator=gen, dtype=torch.float64)
        wt = torch.randn(d, c, p, p, generator=gen, dtype=torch.float64)
        bias = torch.randn(d, generator=gen, dtype=torch.float64)
        conv = F.conv2d(x, wt, bias, stride=p).flatten(2).transpose(1, 2)
        lin = F.linear(ld.patchify(x, p), wt.reshape(d, -1), bias)
        assert torch.allclose(conv, lin, rtol=0, atol=1e-12), f"patchify p={p} disagrees with conv2d"
        # Output tokens order channels as (pr, pc, ch), unlike the (ch, pr, pc) of patch vectors (§3.5).
        g = size // p
        tokens = torch.zeros(2, g * g, p * p * c, dtype=torch.float64)
        for i in range(g):
            for j in range(g):
                for pr in range(p):
                    for pc in range(p):
                        tokens[:, i * g + j, (pr * p + pc) * c:(pr * p + pc + 1) * c] = x[:, :, i * p + pr, j * p + pc]
        assert torch.equal(ld.unpatchify(tokens, p, c, g), x), f"unpatchify layout wrong for p={p}"
    print("  patch embed equals conv2d (p = 1, 2); unpatchify follows the (pr, pc, ch) token layout")


def _inputs(cfg, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.0, 0.37, 1.6, 1.0, 0.9][:batch], dtype=torch.float64)
    y = torch.tensor([0, cfg.num_classes, 3, 1, 2][:batch], dtype=torch.int32)
    r = torch.tensor([1.0, 0.37, 0.5, 1.0, 0.2][:batch], dtype=torch.float64)
    return x, t, y, r


def check_forward_against_numpy():
    configs = [preset("tiny"),
               preset("B/1", depth=1, hidden=64, heads=4, in_channels=4, input_size=6, num_classes=7, name="p1"),
               preset("tiny", aux_time=True, depth=1, name="tiny-aux"),
               preset("tiny", qk_norm=False, rope=False, depth=1, name="tiny-plain")]
    for cfg in configs:
        model = ld.build(cfg, seed=1234, dtype=torch.float64)
        w = {k: v.astype(np.float64) for k, v in model_weights(cfg, 1234).items()}
        x, t, y, r = _inputs(cfg, 3, 11)
        with torch.no_grad():
            out = model(x, t, y, r=r).numpy()
        scale = float(np.abs(out).max())
        assert np.isfinite(out).all() and scale > 1e-3, f"{cfg.name}: output max {scale}"
        for b in range(3):
            ref = numpy_forward(cfg, w, x[b].numpy(), float(t[b]), int(y[b]), float(r[b]))
            err = float(np.abs(out[b] - ref).max())
            assert err < 1e-12 * max(scale, 1.0), f"{cfg.name}: sample {b} differs from numpy by {err} (max {scale})"
        # Batch independence: one sample alone gives the same numbers.
        with torch.no_grad():
            single = model(x[1:2], t[1:2], y[1:2], r=r[1:2]).numpy()
        assert np.abs(single[0] - out[1]).max() < 1e-13 * max(scale, 1.0), f"{cfg.name}: batch dependence"
        print(f"  {cfg.name:<8} torch fp64 forward == numpy transcription (max |out| {scale:.3f})")


def check_guards():
    cfg = preset("tiny")
    x, t, y, _ = _inputs(cfg, 2, 3)
    with torch.no_grad():
        assert torch.isnan(ld.build(cfg, dtype=torch.float64)(x, t, y)).all(), "unloaded model must give NaN"
    model = ld.build(cfg, seed=1, dtype=torch.float64)
    for bad in ((x[:, :, :16], t, y), (x, t[:1], y), (x, t, torch.tensor([0, 11], dtype=torch.int32)),
                (x, t, y.float())):
        try:
            model(*bad)
        except ValueError:
            continue
        raise AssertionError("bad input accepted")
    print("  NaN poison before loading; bad shapes / labels rejected with ValueError")


def check_fp32_close():
    cfg = preset("tiny")
    x, t, y, _ = _inputs(cfg, 3, 17)
    m64 = ld.build(cfg, seed=1234, dtype=torch.float64)
    m32 = ld.build(cfg, seed=1234, dtype=torch.float32)
    with torch.no_grad():
        ref = m64(x, t, y)
        got = m32(x.float(), t.float(), y).double()
    rel = float((got - ref).abs().max() / ref.abs().max())
    assert rel < 1e-4, f"fp32 vs fp64 relative error {rel}"
    print(f"  fp32 vs fp64 on CPU: max |diff| / max |ref| = {rel:.2e}")


def main():
    torch.manual_seed(0)
    print("lightningdit.py self-test")
    check_inventory()
    check_layout()
    check_forward_against_numpy()
    check_guards()
    check_fp32_close()
    print("lightningdit.py self-test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
