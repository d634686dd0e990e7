"""Self-test of lightningdit.py: state-dict inventory, layout helpers, and the whole forward against a second,
deliberately naive transcription of facm-spec.md §3.2 in numpy (per sample, per token, per head loops).

Run: python3 tools/reference/lightningdit.py   (or this file). CPU only, a few seconds.
"""
import numpy as np
import torch
import torch.nn.functional as F

import lightningdit as ld
from lightningdit_numpy import numpy_forward
from lightningdit_config import parameter_inventory, preset
from philox_weights import model_weights


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
