"""LightningDiT as FACM configures it (facm-spec.md §3), in plain PyTorch, as the independent reference.

State-dict keys and shapes are exactly those of the official checkpoints (§3.3; lightningdit_config.parameter_inventory
is the list, and the self-test checks it). The model is built with NaN parameters: load weights before use, either a
checkpoint's state dict or the deterministic Philox weights (load_philox_weights, see philox_weights.py).

Forward signature: model(x, t, y, r=None) with x (B, C, H, W), t (B,) float, y (B,) int in [0, num_classes]
(num_classes = null class), r (B,) only for the auxiliary-time variant (ignored otherwise, as in the released models).
Runs in any float dtype; RMSNorm statistics use at least fp32 (fp64 in an fp64 model).

Run `python3 tools/reference/lightningdit.py` for the self-test (CPU is enough).
"""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import philox_weights
from lightningdit_config import PRESETS, LightningDiTConfig, fixed_tables, parameter_inventory, preset  # noqa: F401


def _stats_dtype(dtype):
    """Precision of norm statistics and time features: fp32 for half types, else the tensor's own."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) computed in >= fp32, cast back to x's dtype, then times the weight (§3.2)."""

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim))

    def forward(self, x):
        xs = x.to(_stats_dtype(x.dtype))
        normed = xs * torch.rsqrt(xs.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def modulate(x, shift, scale):
    """adaLN modulation x·(1 + scale) + shift, per batch row, broadcast over tokens."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def patchify(x, p):
    """(B, C, H, W) → (B, (H/p)(W/p), C·p·p); token n = i·(W/p) + j, vector order (c, pr, pc) like a conv weight."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens, p, channels, grid):
    """(B, T, p·p·C) → (B, C, grid·p, grid·p): token (i, j) index (pr·p + pc)·C + ch → pixel (i·p + pr, j·p + pc)."""
    b = tokens.shape[0]
    x = tokens.reshape(b, grid, grid, p, p, channels).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, channels, grid * p, grid * p)


def apply_rope(x, cos, sin):
    """Interleaved-pair rotation (§3.4): x'[2p] = x[2p]·cos − x[2p+1]·sin, x'[2p+1] = x[2p+1]·cos + x[2p]·sin."""
    rotated = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).reshape(x.shape)
    return x * cos + rotated * sin


class PatchEmbed(nn.Module):
    """Conv-shaped weight (D, C, p, p) as in the checkpoint, applied as a linear map on patch vectors."""

    def __init__(self, cfg):
        super().__init__()
        self.patch = cfg.patch
        self.proj = nn.Conv2d(cfg.in_channels, cfg.hidden, cfg.patch, stride=cfg.patch, bias=True)

    def forward(self, x):
        # Same numbers as the conv (self-test checks it), but through a plain GEMM, so no cuDNN/TF32 choice applies.
        w = self.proj.weight
        return F.linear(patchify(x, self.patch), w.reshape(w.shape[0], -1), self.proj.bias)


class TimestepEmbedder(nn.Module):
    """e(τ) = [cos(τ f_k), sin(τ f_k)], f_k = exp(−ln(max_period)·k/half), then Linear–SiLU–Linear (§3.2 step 3)."""

    def __init__(self, cfg):
        super().__init__()
        self.freq_dim = cfg.time_freq_dim
        self.max_period = cfg.time_max_period
        self.mlp = nn.Sequential(nn.Linear(cfg.time_freq_dim, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden))

    def features(self, t):
        dtype = _stats_dtype(self.mlp[0].weight.dtype)
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, dtype=dtype, device=t.device) / half)
        args = t.to(dtype)[:, None] * freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t):
        return self.mlp(self.features(t).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class table with num_classes + 1 rows; the last row is the null (unconditional) class."""

    def __init__(self, cfg):
        super().__init__()
        self.embedding_table = nn.Embedding(cfg.num_classes + 1, cfg.hidden)

    def forward(self, y):
        return self.embedding_table(y)


class RopeTables(nn.Module):
    """Holds the RoPE cos/sin tables (T, head_dim) as persistent buffers, as the checkpoints store them."""

    def __init__(self, cos, sin):
        super().__init__()
        self.register_buffer("freqs_cos", torch.from_numpy(cos))
        self.register_buffer("freqs_sin", torch.from_numpy(sin))


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden, bias=True)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        self.proj = nn.Linear(cfg.hidden, cfg.hidden, bias=True)

    def forward(self, a, rope_cos, rope_sin):
        b, t, d = a.shape
        # Per token the 3D outputs are (3, heads, head_dim): q heads, then k heads, then v heads.
        q, k, v = self.qkv(a).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope_cos is not None:
            q, k = apply_rope(q, rope_cos, rope_sin), apply_rope(k, rope_cos, rope_sin)
        scores = (q @ k.transpose(-2, -1)) * (self.head_dim ** -0.5)
        probs = torch.softmax(scores, dim=-1)
        out = (probs.to(v.dtype) @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(out)


class SwiGLU(nn.Module):
    """[g; u] = w12·x (first half g), out = w3·(SiLU(g) ⊙ u)."""

    def __init__(self, cfg):
        super().__init__()
        self.w12 = nn.Linear(cfg.hidden, 2 * cfg.mlp_hidden, bias=True)
        self.w3 = nn.Linear(cfg.mlp_hidden, cfg.hidden, bias=True)

    def forward(self, x):
        g, u = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(g) * u)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm1 = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden, 6 * cfg.hidden, bias=True))

    def forward(self, h, c, rope_cos, rope_sin):
        # Chunk order [shift_a, scale_a, gate_a, shift_m, scale_m, gate_m] (§3.2).
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=-1)
        h = h + gate_a[:, None, :] * self.attn(modulate(self.norm1(h), shift_a, scale_a), rope_cos, rope_sin)
        h = h + gate_m[:, None, :] * self.mlp(modulate(self.norm2(h), shift_m, scale_m))
        return h


class FinalLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm_final = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.linear = nn.Linear(cfg.hidden, cfg.patch * cfg.patch * cfg.out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden, 2 * cfg.hidden, bias=True))

    def forward(self, h, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)  # order [shift, scale]
        return self.linear(modulate(self.norm_final(h), shift, scale))


class LightningDiT(nn.Module):
    def __init__(self, cfg: LightningDiTConfig):
        super().__init__()
        self.cfg = cfg
        tables = fixed_tables(cfg)
        self.x_embedder = PatchEmbed(cfg)
        self.t_embedder = TimestepEmbedder(cfg)
        self.r_embedder = TimestepEmbedder(cfg) if cfg.aux_time else None
        self.y_embedder = LabelEmbedder(cfg)
        self.pos_embed = nn.Parameter(torch.from_numpy(tables["pos_embed"]), requires_grad=False)
        self.feat_rope = RopeTables(tables["feat_rope.freqs_cos"], tables["feat_rope.freqs_sin"]) if cfg.rope else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(cfg)
        with torch.no_grad():  # poison everything that must come from a checkpoint or the Philox scheme
            for name, p in self.named_parameters():
                if name != "pos_embed":
                    p.fill_(float("nan"))

    def _check_inputs(self, x, t, y):
        cfg = self.cfg
        want = (cfg.in_channels, cfg.input_size, cfg.input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"{cfg.name}: x has shape {tuple(x.shape)}, expected (B, {want[0]}, {want[1]}, {want[2]})")
        b = x.shape[0]
        if tuple(t.shape) != (b,) or tuple(y.shape) != (b,):
            raise ValueError(f"{cfg.name}: t {tuple(t.shape)} and y {tuple(y.shape)} must both be ({b},)")
        if y.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"{cfg.name}: y must be an integer tensor, got {y.dtype}")
        if b and (int(y.min()) < 0 or int(y.max()) > cfg.num_classes):
            raise ValueError(f"{cfg.name}: labels must be in [0, {cfg.num_classes}] ({cfg.num_classes} = null), "
                             f"got {y.tolist()}")

    def forward(self, x, t, y, r=None, trace=None):
        """Output (B, C, H, W). `trace`, if a dict, receives 'c' (B, D) and 'h0' (B, T, D) for debugging."""
        self._check_inputs(x, t, y)
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y.long())
        if self.r_embedder is not None:
            if r is None:
                raise ValueError(f"{self.cfg.name}: the auxiliary-time model needs r")
            c = c + self.r_embedder(r)
        if trace is not None:
            trace["c"], trace["h0"] = c.detach().clone(), h.detach().clone()
        cos, sin = (self.feat_rope.freqs_cos, self.feat_rope.freqs_sin) if self.feat_rope is not None else (None, None)
        for block in self.blocks:
            h = block(h, c, cos, sin)
        out = self.final_layer(h, c)
        return unpatchify(out, self.cfg.patch, self.cfg.out_channels, self.cfg.grid)


def load_arrays(model, arrays):
    """Loads {key: numpy or torch array} strictly (every key, nothing extra), converting to the model's dtype."""
    state = {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(v)) for k, v in arrays.items()}
    model.load_state_dict(state, strict=True)
    return model


def load_philox_weights(model, seed):
    """Fills the model with the Philox weight scheme of philox_weights.py (fixed tables as computed)."""
    load_arrays(model, philox_weights.model_weights(model.cfg, seed))
    return model


def build(cfg, seed=None, dtype=torch.float32, device="cpu", weights=None):
    """A model in eval mode on `device` in `dtype`, with the Philox weights of `seed`, or the given `weights`
    ({key: array}, e.g. philox_weights.model_weights(cfg, seed) computed once), or NaNs when both are None."""
    model = LightningDiT(cfg)
    if weights is not None:
        load_arrays(model, weights)
    elif seed is not None:
        load_philox_weights(model, seed)
    return model.to(device=device, dtype=dtype).eval()


if __name__ == "__main__":
    import lightningdit_selftest
    sys.exit(lightningdit_selftest.main())
