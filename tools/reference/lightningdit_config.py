"""LightningDiT configuration, parameter inventory and fixed tables (facm-spec.md §3), in plain numpy (no torch).

Kept apart from the torch model in lightningdit.py so that the weight scheme (philox_weights.py) and its checks run
on a machine without torch, and so the inventory below is the one written-down list of checkpoint keys and shapes
that the model's state_dict() is tested against.
"""
import dataclasses
import json
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LightningDiTConfig:
    """One LightningDiT variant. Square inputs only (input_size × input_size), like the original code."""
    depth: int
    hidden: int
    heads: int
    patch: int = 1
    in_channels: int = 32
    input_size: int = 16
    num_classes: int = 1000
    qk_norm: bool = True
    rope: bool = True
    aux_time: bool = False
    mlp_ratio: int = 4
    time_freq_dim: int = 256
    time_max_period: float = 10000.0
    norm_eps: float = 1e-6
    name: str = "custom"

    def __post_init__(self):
        problems = []
        if min(self.depth, self.hidden, self.heads, self.patch, self.in_channels, self.input_size,
               self.num_classes, self.mlp_ratio) < 1:
            problems.append("all sizes must be >= 1")
        if self.hidden % self.heads:
            problems.append(f"hidden {self.hidden} is not a multiple of heads {self.heads}")
        if self.hidden % 4:
            problems.append(f"hidden {self.hidden} must be a multiple of 4 (2-D sin-cos pos_embed: sin+cos per axis)")
        if self.rope and (self.hidden // max(self.heads, 1)) % 4:
            problems.append(f"head_dim {self.hidden // max(self.heads, 1)} must be a multiple of 4 for 2-D RoPE "
                            "(interleaved pairs, half of them per axis)")
        if self.input_size % self.patch:
            problems.append(f"input_size {self.input_size} is not a multiple of patch {self.patch}")
        if self.time_freq_dim % 2:
            problems.append(f"time_freq_dim {self.time_freq_dim} must be even")
        if problems:
            raise ValueError(f"invalid LightningDiT config {self.name}: " + "; ".join(problems))

    @property
    def head_dim(self):
        return self.hidden // self.heads

    @property
    def mlp_hidden(self):
        """SwiGLU width F = floor(2/3 · mlp_ratio · D), in exact integer arithmetic (§3.1, §3.5)."""
        return (2 * self.mlp_ratio * self.hidden) // 3

    @property
    def grid(self):
        return self.input_size // self.patch

    @property
    def tokens(self):
        return self.grid * self.grid

    @property
    def out_channels(self):
        return self.in_channels

    @property
    def null_class(self):
        """Row of the class table used for the unconditional branch (the last row)."""
        return self.num_classes

    def to_dict(self):
        """All fields plus the derived sizes (the derived ones are informative; from_dict ignores them)."""
        d = dataclasses.asdict(self)
        d.update(head_dim=self.head_dim, mlp_hidden=self.mlp_hidden, grid=self.grid, tokens=self.tokens,
                 out_channels=self.out_channels, null_class=self.null_class)
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d):
        names = {f.name for f in dataclasses.fields(LightningDiTConfig)}
        return LightningDiTConfig(**{k: v for k, v in d.items() if k in names})


# §3.5 size variants (ImageNet latent defaults: 32×16×16 input, 1000 classes, qk-norm and RoPE on as in FACM),
# plus our two Fashion-MNIST sizes (32×32×1 images, patch 2 → 256 tokens, 10 classes).
_IMAGENET = dict(in_channels=32, input_size=16, num_classes=1000)
_FASHION = dict(in_channels=1, input_size=32, num_classes=10, patch=2)
PRESETS = {
    "B/1": dict(depth=12, hidden=768, heads=12, patch=1, **_IMAGENET),
    "B/2": dict(depth=12, hidden=768, heads=12, patch=2, **_IMAGENET),
    "L/2": dict(depth=24, hidden=1024, heads=16, patch=2, **_IMAGENET),
    "XL/1": dict(depth=28, hidden=1152, heads=16, patch=1, **_IMAGENET),
    "XL/2": dict(depth=28, hidden=1152, heads=16, patch=2, **_IMAGENET),
    "1p0B/1": dict(depth=24, hidden=1536, heads=24, patch=1, **_IMAGENET),
    "1p0B/2": dict(depth=24, hidden=1536, heads=24, patch=2, **_IMAGENET),
    "1p6B/1": dict(depth=28, hidden=1792, heads=28, patch=1, **_IMAGENET),
    "1p6B/2": dict(depth=28, hidden=1792, heads=28, patch=2, **_IMAGENET),
    "tiny": dict(depth=2, hidden=64, heads=4, **_FASHION),
    "small": dict(depth=6, hidden=256, heads=4, **_FASHION),
}


def preset(preset_name, /, **overrides):
    """A preset by name (see PRESETS), with any field overridden, e.g. preset("B/1", depth=2)."""
    if preset_name not in PRESETS:
        raise KeyError(f"unknown LightningDiT preset {preset_name!r}; known: {', '.join(PRESETS)}")
    fields = dict(PRESETS[preset_name], name=preset_name)
    fields.update(overrides)
    return LightningDiTConfig(**fields)


def _time_mlp(prefix, d, freq_dim):
    return [(f"{prefix}.mlp.0.weight", (d, freq_dim)), (f"{prefix}.mlp.0.bias", (d,)),
            (f"{prefix}.mlp.2.weight", (d, d)), (f"{prefix}.mlp.2.bias", (d,))]


def parameter_inventory(cfg):
    """[(state-dict key, shape)] of every tensor in the checkpoint (§3.3), fixed tables included."""
    d, dh, f, p, c = cfg.hidden, cfg.head_dim, cfg.mlp_hidden, cfg.patch, cfg.in_channels
    inv = [("pos_embed", (1, cfg.tokens, d)),
           ("x_embedder.proj.weight", (d, c, p, p)), ("x_embedder.proj.bias", (d,))]
    inv += _time_mlp("t_embedder", d, cfg.time_freq_dim)
    if cfg.aux_time:
        inv += _time_mlp("r_embedder", d, cfg.time_freq_dim)
    inv.append(("y_embedder.embedding_table.weight", (cfg.num_classes + 1, d)))
    if cfg.rope:
        inv += [("feat_rope.freqs_cos", (cfg.tokens, dh)), ("feat_rope.freqs_sin", (cfg.tokens, dh))]
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        inv += [(b + "norm1.weight", (d,)),
                (b + "attn.qkv.weight", (3 * d, d)), (b + "attn.qkv.bias", (3 * d,))]
        if cfg.qk_norm:
            inv += [(b + "attn.q_norm.weight", (dh,)), (b + "attn.k_norm.weight", (dh,))]
        inv += [(b + "attn.proj.weight", (d, d)), (b + "attn.proj.bias", (d,)),
                (b + "norm2.weight", (d,)),
                (b + "mlp.w12.weight", (2 * f, d)), (b + "mlp.w12.bias", (2 * f,)),
                (b + "mlp.w3.weight", (d, f)), (b + "mlp.w3.bias", (d,)),
                (b + "adaLN_modulation.1.weight", (6 * d, d)), (b + "adaLN_modulation.1.bias", (6 * d,))]
    inv += [("final_layer.norm_final.weight", (d,)),
            ("final_layer.linear.weight", (p * p * cfg.out_channels, d)),
            ("final_layer.linear.bias", (p * p * cfg.out_channels,)),
            ("final_layer.adaLN_modulation.1.weight", (2 * d, d)),
            ("final_layer.adaLN_modulation.1.bias", (2 * d,))]
    return inv


BUFFER_KEYS = ("feat_rope.freqs_cos", "feat_rope.freqs_sin")


def parameter_count(cfg):
    """Number of parameters (nn.Parameter, pos_embed included, RoPE buffers not), as §3.3/§3.5 count them."""
    return sum(int(np.prod(shape)) for key, shape in parameter_inventory(cfg) if key not in BUFFER_KEYS)


def _sincos_1d(positions, dim):
    """[sin(p·ω_k) ‖ cos(p·ω_k)], ω_k = 10000^(−k/(dim/2)), k < dim/2 (MAE recipe), float64."""
    omega = 1.0 / 10000.0 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(positions.astype(np.float64), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def pos_embed_table(cfg):
    """Fixed absolute position table (1, T, D) float32 (§3.2 step 2).

    Token n = g·i + j (i row, j column); P_n = [E1D(j) ‖ E1D(i)], each half D/2 wide: the FIRST half encodes the
    column j. Computed in float64, rounded once to float32.
    """
    g = cfg.grid
    rows, cols = np.divmod(np.arange(cfg.tokens), g)
    table = np.concatenate([_sincos_1d(cols, cfg.hidden // 2), _sincos_1d(rows, cfg.hidden // 2)], axis=1)
    return table.astype(np.float32)[None]


def rope_tables(cfg):
    """RoPE cos/sin tables (T, head_dim) float32 (§3.4).

    Pair p (channels 2p, 2p+1) of a head vector at token n = g·i + j has angle i·φ_p for p < dh/4 and j·φ_(p−dh/4)
    otherwise, φ_m = 10000^(−2m/(dh/2)); each angle is written to both channels of its pair. Float64, rounded once.
    """
    dh, g = cfg.head_dim, cfg.grid
    half = dh // 2  # channels per axis
    phi = 1.0 / 10000.0 ** (np.arange(0, half, 2, dtype=np.float64) / half)  # dh/4 frequencies
    rows, cols = np.divmod(np.arange(cfg.tokens), g)
    angles = np.concatenate([np.outer(rows, phi), np.outer(cols, phi)], axis=1)  # (T, dh/2), one per pair
    angles = np.repeat(angles, 2, axis=1)  # (T, dh): pair p → channels 2p, 2p+1
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def fixed_tables(cfg):
    """{key: float32 array} of the tensors that are computed, not random: pos_embed and (with RoPE) the RoPE tables."""
    tables = {"pos_embed": pos_embed_table(cfg)}
    if cfg.rope:
        tables["feat_rope.freqs_cos"], tables["feat_rope.freqs_sin"] = rope_tables(cfg)
    return tables


def self_test():
    # §3.3 / §3.5 parameter counts (qk-norm on, pos_embed included).
    xl = preset("XL/1")
    assert parameter_count(xl) == 675_260_768, parameter_count(xl)
    assert parameter_count(preset("XL/1", qk_norm=False)) == 675_256_736
    assert parameter_count(xl) - xl.tokens * xl.hidden == 674_965_856
    for name, millions in (("B/1", 130.56), ("B/2", 130.56), ("L/2", 458.16), ("XL/2", 675.26),
                           ("1p0B/1", 1029.40), ("1p6B/2", 1631.77)):
        got = parameter_count(preset(name)) / 1e6
        assert abs(got - millions) < 0.006, f"{name}: {got:.3f} M parameters, spec says {millions} M"
    for name, f in (("B/1", 2048), ("L/2", 2730), ("XL/1", 3072), ("1p0B/1", 4096), ("1p6B/1", 4778),
                    ("tiny", 170), ("small", 682)):
        assert preset(name).mlp_hidden == f, f"{name}: F = {preset(name).mlp_hidden}, want {f}"
        assert preset(name).mlp_hidden == int(2 / 3 * (4 * preset(name).hidden)), name
    tiny = preset("tiny")
    assert (tiny.tokens, tiny.head_dim, tiny.patch) == (256, 16, 2)
    assert LightningDiTConfig.from_dict(json.loads(tiny.to_json())) == tiny
    # pos_embed: token n = 16 i + j, first half encodes the column j (sin then cos), second half the row i.
    pe = pos_embed_table(xl)[0].astype(np.float64)
    i, j = 3, 5
    n = 16 * i + j
    k = 7
    w = 10000.0 ** (-k / 288.0)
    assert abs(pe[n, k] - np.sin(j * w)) < 1e-7 and abs(pe[n, 288 + k] - np.cos(j * w)) < 1e-7
    assert abs(pe[n, 576 + k] - np.sin(i * w)) < 1e-7 and abs(pe[n, 576 + 288 + k] - np.cos(i * w)) < 1e-7
    # RoPE: pair p < 18 rotates with the row i, pair p >= 18 with the column j, φ_m = 10000^(−m/18).
    cos, sin = rope_tables(xl)
    for p in (0, 5, 17, 18, 30, 35):
        theta = (i if p < 18 else j) * 10000.0 ** (-(p % 18) / 18.0)
        for ch in (2 * p, 2 * p + 1):
            assert abs(cos[n, ch] - np.cos(theta)) < 1e-7 and abs(sin[n, ch] - np.sin(theta)) < 1e-7, (p, ch)
    for bad in (dict(hidden=66), dict(heads=5), dict(patch=3), dict(hidden=72, heads=12)):
        try:
            preset("tiny", **bad)
        except ValueError:
            continue
        raise AssertionError(f"config {bad} was accepted")
    print("lightningdit_config.py self-test passed (parameter counts, SwiGLU widths, tables, presets)")


if __name__ == "__main__":
    self_test()
