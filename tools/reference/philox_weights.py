"""Deterministic LightningDiT weights from a seed, with no weight file: the "Philox weight scheme" (version 1).

The Java side implements the same scheme (see README.md), so a fixture can carry only inputs and outputs and both
sides regenerate identical float32 weights.

Scheme, for a seed S and the checkpoint keys of a model (lightningdit_config.parameter_inventory):
  1. Leave out the fixed tables pos_embed, feat_rope.freqs_cos, feat_rope.freqs_sin (computed, not random).
  2. Sort the remaining keys lexicographically (Python sorted() on str == Java String.compareTo for ASCII keys);
     the tensor index k is the position in that order, k = 0, 1, ...
  3. Element i of tensor k (row-major over the state-dict shape) gets n = Philox.normal(S, (k << 32) + i), a float32.
  4. Its value, computed in float64 from the float32 n and rounded once to float32:
       keys ending in norm1.weight, norm2.weight, q_norm.weight, k_norm.weight, norm_final.weight:  1.0 + 0.1 * n
       keys ending in .bias, and y_embedder.embedding_table.weight:                                    0.02 * n
       every other key (all end in .weight):                                   n / sqrt(fan_in), fan_in = numel / shape[0]
     (Java: (float) (1.0 + 0.1 * (double) n), (float) (0.02 * (double) n), (float) ((double) n / Math.sqrt(fanIn)).)

Why these scales: unit-variance activations through every linear (n / sqrt(fan_in)), RMSNorm weights near 1, small
biases and class rows, and non-zero adaLN and output layers, so every path of the network carries signal (the
official zero-init of gates and output layers would make a fixture that cannot see most bugs).

Run `python3 tools/reference/philox_weights.py` for the self-test (numpy only).
"""
import math

import numpy as np

import philox
from lightningdit_config import fixed_tables, parameter_inventory, preset

SCHEME_VERSION = 1
FIXED_TABLE_KEYS = ("pos_embed", "feat_rope.freqs_cos", "feat_rope.freqs_sin")
NORM_WEIGHT_SUFFIXES = ("norm1.weight", "norm2.weight", "q_norm.weight", "k_norm.weight", "norm_final.weight")
SMALL_KEYS = ("y_embedder.embedding_table.weight",)


def random_keys(keys):
    """The keys that get Philox values, in tensor-index order k = 0, 1, ... ."""
    return sorted(k for k in keys if k not in FIXED_TABLE_KEYS)


def value_rule(key, shape):
    """Which value rule a key gets: 'norm', 'small' or 'fan_in'; raises on a key the scheme does not cover."""
    if key.endswith(NORM_WEIGHT_SUFFIXES):
        return "norm"
    if key.endswith(".bias") or key in SMALL_KEYS:
        return "small"
    if key.endswith(".weight") and len(shape) >= 2:
        return "fan_in"
    raise ValueError(f"Philox weight scheme has no rule for key {key!r} with shape {tuple(shape)}")


def fan_in(shape):
    return math.prod(shape) // shape[0]


def apply_rule(key, shape, normals):
    """float32 values for one tensor from its float32 normals (flat, row-major)."""
    n = normals.astype(np.float64)
    rule = value_rule(key, shape)
    if rule == "norm":
        v = 1.0 + 0.1 * n
    elif rule == "small":
        v = 0.02 * n
    else:
        v = n / math.sqrt(fan_in(shape))
    return v.astype(np.float32).reshape(shape)


def philox_weights(shapes, seed):
    """{key: float32 array} for every non-fixed key of `shapes` ({key: shape}), by the scheme above."""
    out = {}
    for k, key in enumerate(random_keys(shapes)):
        shape = tuple(int(s) for s in shapes[key])
        count = math.prod(shape)
        if count >= 1 << 32:
            raise ValueError(f"{key} has {count} elements; the scheme's counter (k << 32) + i allows < 2^32")
        out[key] = apply_rule(key, shape, philox.normal_range(seed, k << 32, count))
    return out


def model_weights(cfg, seed):
    """The full checkpoint dict (random tensors by the scheme plus the fixed tables) of a config, float32."""
    shapes = dict(parameter_inventory(cfg))
    weights = philox_weights(shapes, seed)
    weights.update(fixed_tables(cfg))
    missing = set(shapes) - set(weights)
    if missing:
        raise AssertionError(f"no values for {sorted(missing)}")
    return weights


def weight_head(weights, count=8):
    """(K, count) float32: the first `count` values of every random tensor in k order, a cheap bit-exact check."""
    keys = random_keys(weights)
    head = np.zeros((len(keys), count), dtype=np.float32)
    for k, key in enumerate(keys):
        flat = weights[key].reshape(-1)[:count]
        head[k, :flat.size] = flat
    return keys, head


def _scalar_normal(seed, counter):
    """Independent scalar path: philox.block_scalar + math, the exact Java formula."""
    s = seed & philox.MASK64
    w = philox.block_scalar((counter & philox.MASK32, counter >> 32, 0, 0), (s & philox.MASK32, s >> 32))
    u0 = (w[0] + 0.5) * philox.TWO_POW_M32
    u1 = (w[1] + 0.5) * philox.TWO_POW_M32
    return float(np.float32(math.sqrt(-2.0 * math.log(u0)) * math.cos(2.0 * math.pi * u1)))


def self_test():
    cfg = preset("tiny")
    w = model_weights(cfg, 1234)
    keys = random_keys(w)
    assert keys[0] == "blocks.0.adaLN_modulation.1.bias", keys[0]  # sorted: 'blocks...' < 'final_layer...'
    assert "pos_embed" not in keys and "feat_rope.freqs_cos" not in keys
    assert keys == sorted(keys) and len(keys) == len(w) - 3
    # Spot-check elements against the scalar path, for each rule.
    for key, index in (("blocks.0.adaLN_modulation.1.bias", 0), ("blocks.1.norm1.weight", 63),
                       ("blocks.0.attn.q_norm.weight", 5), ("x_embedder.proj.weight", 255),
                       ("y_embedder.embedding_table.weight", 700), ("t_embedder.mlp.0.weight", 12345),
                       ("final_layer.linear.weight", 7)):
        k = keys.index(key)
        n = _scalar_normal(1234, (k << 32) + index)
        shape = w[key].shape
        rule = value_rule(key, shape)
        want = {"norm": 1.0 + 0.1 * n, "small": 0.02 * n, "fan_in": n / math.sqrt(fan_in(shape))}[rule]
        got = w[key].reshape(-1)[index]
        assert got == np.float32(want), f"{key}[{index}] = {got!r}, scalar path {np.float32(want)!r}"
    assert fan_in((64, 1, 2, 2)) == 4 and fan_in((192, 64)) == 64
    # Scale sanity: linear weights have std ≈ 1/sqrt(fan_in), norms ≈ 1 ± 0.1.
    qkv = w["blocks.0.attn.qkv.weight"]
    assert abs(float(qkv.std()) * 8.0 - 1.0) < 0.02, qkv.std()
    assert abs(float(w["blocks.0.norm1.weight"].mean()) - 1.0) < 0.05
    for bad_key in ("blocks.0.attn.rope_buffer", "some.scalar"):
        try:
            value_rule(bad_key, (3,))
        except ValueError:
            continue
        raise AssertionError(f"{bad_key} got a rule")
    # Deterministic: same seed, same bits; another seed, other bits.
    again = model_weights(cfg, 1234)
    assert all(np.array_equal(again[k].view(np.uint32), w[k].view(np.uint32)) for k in w)
    other = model_weights(cfg, 1235)
    assert not np.array_equal(other["blocks.0.attn.qkv.weight"], qkv)
    _, head = weight_head(w, 4)
    print("philox_weights.py self-test passed; tiny seed 1234, first values of the first tensors (k order):")
    for k in range(3):
        print(f"  k={k:2d} {keys[k]:<40} {' '.join(f'{v: .9g}' for v in head[k])}")


if __name__ == "__main__":
    self_test()
