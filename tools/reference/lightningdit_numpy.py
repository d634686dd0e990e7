"""A second, deliberately naive float64 transcription of the LightningDiT forward (facm-spec.md §3.2) in numpy:
per sample, per token, per head, straight from the spec text. No torch, so check_fixtures.py can verify fixtures on
any machine, and lightningdit_selftest.py compares the torch model against it.
"""
import math

import numpy as np


def _silu(a):
    return a / (1.0 + np.exp(-a))


def _rms(v, w, eps):
    return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + eps) * w


def numpy_forward(cfg, w, x, t, y, r=None, trace=None):
    """One sample, float64, written from the spec text: x (C, H, W), scalar t, int y → (C, H, W).

    `w` maps checkpoint keys to float64 arrays; `trace`, if a dict, receives 'c' (D,) and 'h0' (T, D).
    """
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
    if trace is not None:
        trace["c"], trace["h0"] = c.copy(), h.copy()
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
