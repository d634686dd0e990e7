"""FACM samplers (facm-spec.md §7) around any model(x, t, y) -> velocity-like tensor of x's shape.

The state (x, x̂₁) is kept in float64 whatever the model's dtype; the model sees x and its time input cast to the
dtype of the initial latent z (as the official sampler does), and its output is promoted back to float64.

Time grids: t_k = k / N in float64 (the official code uses torch.linspace(0, 1, N + 1), equal up to the last bit).
"""
import torch


def _time(batch, value, like):
    """Time input of the model: one float64 value for the whole batch, cast to the model input dtype."""
    return torch.full((batch,), float(value), dtype=torch.float64, device=like.device).to(like.dtype)


def consistency_sample(model, z, y, steps, noises=()):
    """N-step consistency sampling: for k < N, d = F(x, t_k, y), x̂₁ = x + (1 − t_k)·d; if k < N − 1 re-noise
    x = t_{k+1}·x̂₁ + (1 − t_{k+1})·ε_k with ε_k = noises[k]. Returns x̂₁ of the last step (float64).

    1 step: x̂₁ = z + F(z, 0, y). 2 steps: x_{½} = ½·(z + F(z, 0, y)) + ½·ε₀; x̂₁ = x_{½} + ½·F(x_{½}, ½, y).
    No CFG (the released models have guidance distilled in).
    """
    if steps < 1:
        raise ValueError(f"consistency_sample: steps must be >= 1, got {steps}")
    if len(noises) < steps - 1:
        raise ValueError(f"consistency_sample: {steps} steps need {steps - 1} re-noise tensors, got {len(noises)}")
    dtype, batch = z.dtype, z.shape[0]
    x = z.to(torch.float64)
    x_end = None
    for k in range(steps):
        t = k / steps
        d = model(x.to(dtype), _time(batch, t, z), y).to(torch.float64)
        x_end = x + (1.0 - t) * d
        if k < steps - 1:
            t_next = (k + 1) / steps
            noise = noises[k].to(device=x.device, dtype=torch.float64)
            if noise.shape != x.shape:
                raise ValueError(f"consistency_sample: noise {k} has shape {tuple(noise.shape)}, x {tuple(x.shape)}")
            x = t_next * x_end + (1.0 - t_next) * noise
    return x_end


def shifted_grid(steps, shift=1.0):
    """[t_0 .. t_N], t_k = k/N mapped by t ↦ s·t / (1 + (s − 1)·t) (s = 1: identity, exactly)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not shift > 0:
        raise ValueError(f"timestep shift must be > 0 (1.0 = no shift), got {shift}")
    return [shift * (k / steps) / (1.0 + (shift - 1.0) * (k / steps)) for k in range(steps + 1)]


def guided_velocity(model, x, t, y, null_class, cfg_scale, guidance_low, guidance_high, fm_time, dtype):
    """Velocity at grid time t (float64 result). The network's time input is t, or 2 − t when fm_time (FM branch of
    a distilled model). CFG v_u + w·(v_c − v_u) on all channels when w > 1 and guidance_low ≤ t ≤ guidance_high
    (t is the grid time, before any 2 − t); otherwise the conditional velocity alone."""
    batch = x.shape[0]
    tau = 2.0 - t if fm_time else t
    if cfg_scale > 1.0 and guidance_low <= t <= guidance_high:
        both = torch.cat([x, x]).to(dtype)
        labels = torch.cat([y, torch.full_like(y, null_class)])
        out = model(both, torch.full((2 * batch,), tau, dtype=torch.float64, device=x.device).to(dtype), labels)
        cond, uncond = out.to(torch.float64).chunk(2)
        return uncond + cfg_scale * (cond - uncond)
    out = model(x.to(dtype), torch.full((batch,), tau, dtype=torch.float64, device=x.device).to(dtype), y)
    return out.to(torch.float64)


def euler_sample(model, z, y, steps, null_class, cfg_scale=1.0, guidance_low=0.0, guidance_high=1.0, shift=1.0,
                 heun=False, fm_time=False):
    """Euler integration of dx/dt = v from t = 0 (noise z) to t = 1: x_{k+1} = x_k + (t_{k+1} − t_k)·v(x_k, t_k).

    Heun (optional) re-evaluates at (x_{k+1}, t_{k+1}) and uses the mean slope, on every step except the last.
    Returns x at t = 1 (float64).
    """
    dtype = z.dtype
    grid = shifted_grid(steps, shift)

    def velocity(x, t):
        return guided_velocity(model, x, t, y, null_class, cfg_scale, guidance_low, guidance_high, fm_time, dtype)

    x = z.to(torch.float64)
    for k in range(steps):
        t, t_next = grid[k], grid[k + 1]
        d = velocity(x, t)
        x_next = x + (t_next - t) * d
        if heun and k < steps - 1:
            d_next = velocity(x_next, t_next)
            x_next = x + (t_next - t) * (0.5 * d + 0.5 * d_next)
        x = x_next
    return x


def _self_test():
    """Checks the samplers against closed forms with a linear toy 'model' F(x, t, y) = a·x + b·t + c·y."""
    a, b, c = 0.3, -0.7, 0.05
    calls = []

    def toy(x, t, y):
        calls.append((x.shape[0], t.tolist()))
        return a * x + b * t.view(-1, 1) + c * y.to(x.dtype).view(-1, 1)

    z = torch.tensor([[1.0, -2.0], [0.5, 0.25]], dtype=torch.float64)
    y = torch.tensor([1, 4])
    eps = torch.tensor([[0.1, 0.2], [-0.3, 0.4]], dtype=torch.float64)
    f = lambda x, t: a * x + b * t + c * y.to(torch.float64).view(-1, 1)  # noqa: E731
    one = consistency_sample(toy, z, y, 1)
    assert torch.allclose(one, z + f(z, 0.0))
    two = consistency_sample(toy, z, y, 2, [eps])
    x_half = 0.5 * (z + f(z, 0.0)) + 0.5 * eps
    assert torch.allclose(two, x_half + 0.5 * f(x_half, 0.5))
    # Euler, 2 steps, CFG w = 2 inside [0.25, 1]: step 0 (t = 0) unguided, step 1 (t = 0.5) guided; null class 9.
    calls.clear()
    e = euler_sample(toy, z, y, 2, null_class=9, cfg_scale=2.0, guidance_low=0.25, guidance_high=1.0)
    x1 = z + 0.5 * f(z, 0.0)
    cond = f(x1, 0.5)
    uncond = a * x1 + b * 0.5 + c * 9
    assert torch.allclose(e, x1 + 0.5 * (uncond + 2.0 * (cond - uncond)))
    assert [n for n, _ in calls] == [2, 4], calls
    # FM-branch time input: the network sees 2 − t; the guidance interval still uses t.
    calls.clear()
    euler_sample(toy, z, y, 2, null_class=9, cfg_scale=2.0, guidance_low=0.25, guidance_high=1.0, fm_time=True)
    assert calls[0][1] == [2.0, 2.0] and calls[1][1] == [1.5] * 4, calls
    # Heun on 2 steps: one extra evaluation (not on the last step); shift maps the grid.
    calls.clear()
    euler_sample(toy, z, y, 2, null_class=9, heun=True)
    assert len(calls) == 3, calls
    assert shifted_grid(4, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    g = shifted_grid(2, 3.0)
    assert g[0] == 0.0 and g[2] == 1.0 and abs(g[1] - 0.75) < 1e-15
    print("samplers.py self-test passed (consistency 1/2 steps, Euler with CFG interval, 2 − t input, Heun, shift)")


if __name__ == "__main__":
    _self_test()
