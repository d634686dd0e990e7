#!/usr/bin/env python3
"""The stage-2 objectives of facm-spec.md in plain PyTorch, written from the spec (no upstream code), in the official
code's style: FACM (§5.2: teacher velocity with CFG, the FM anchor at time 2 − t, the CM term through torch.func.jvp
with tangents (v, 1) on (x_t, t)) and the two baselines of §5.7, MeanFlow and sCM. Used by facm_step_bench.py (timing)
and make_facm_fixture.py (the float64 reference of one step for the Java tests).

Conventions (§0): t = 0 noise, t = 1 data; x_t = t·x1 + (1 − t)·eps; u = x1 − eps.
Every loss returns (total, loss_cm, loss_fm) with the last two detached; loss_fm is 0 for MeanFlow and sCM.
A model with the auxiliary time embedder (cfg.aux_time, §3.7) gets a second time r: the teacher (or the student
standing in for the unconditional branch) and the FM anchor are called with r = t, the FACM CM term with r = 1.
"""
import math

import torch
import torch.nn.functional as F


def sample_t(b, device, mean=-0.8, std=1.6):
    """§5.2a: n ~ N(mean, std²), t = 1 − (2/π)·atan(exp(n))."""
    n = torch.randn(b, device=device) * std + mean
    return 1 - (2 / math.pi) * torch.atan(torch.exp(n))


def fm_terms(pred, target):
    """Per sample: mean_CHW (pred − target)² and mean_HW (1 − cos_C(pred, target))."""
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    cos = F.cosine_similarity(pred, target, dim=1, eps=1e-8)
    return mse, (1 - cos).flatten(1).mean(dim=1)


def has_aux_time(model):
    return bool(getattr(getattr(model, "cfg", None), "aux_time", False))


def call(model, x, tau, y, r):
    """model(x, τ, y), plus r for a model with the auxiliary time embedder (ignored otherwise, as the released models
    ignore it)."""
    return model(x, tau, y, r=r) if has_aux_time(model) else model(x, tau, y)


def cfg_velocity(student, teacher, xt, u, t, y, null_class, cfgw, glow, ghigh):
    """§5.2b, no gradient: y' = ∅ where glow ≤ t ≤ ghigh, else y. With a teacher: v_c = T(x_t, t, y),
    v_u = T(x_t, t, y'); without: v_c = u and v_u = student(x_t, t, y').
    v = v_u + w·(v_c − v_u) when w > 1, else v_c.
    Both models are queried at time t (r = t for an auxiliary-time model)."""
    with torch.no_grad():
        in_interval = (t >= glow) & (t <= ghigh)
        y_u = torch.where(in_interval, torch.full_like(y, null_class), y)
        v_c = call(teacher, xt, t, y, t) if teacher is not None else u
        if cfgw <= 1:
            return v_c
        v_u = call(teacher if teacher is not None else student, xt, t, y_u, t)
        return v_u + cfgw * (v_c - v_u)


def _interpolant(x1, eps, t):
    tb = t[:, None, None, None]
    return tb * x1 + (1 - tb) * eps, x1 - eps


def _per_sample_mse(a, b):
    return (a - b).pow(2).flatten(1).mean(dim=1)


def facm_loss(student, teacher, x1, y, t, eps, null_class, cfgw=1.75, glow=0.125, ghigh=1.0, p=0.5, clip=1.0,
              norm_eps=1e-3):
    """Total loss L = mean_B L_CM + mean_B L_FM (§5.2e) and its two parts. `teacher` may be None (no distillation:
    v = v_u + w(u − v_u) with v_u from the student without grad, §5.2b)."""
    tb = t[:, None, None, None]
    xt, u = _interpolant(x1, eps, t)
    v = cfg_velocity(student, teacher, xt, u, t, y, null_class, cfgw, glow, ghigh)
    aux = has_aux_time(student)
    # FM anchor (§5.2c): the expanded time 2 − t; an auxiliary-time model is told the task by r = t instead (§3.7)
    f_fm = call(student, xt, t, y, t) if aux else student(xt, 2 - t, y)
    mse, cos = fm_terms(f_fm, v)
    loss_fm = (mse + cos).mean()
    # CM term: primal and tangent in one forward-mode pass (§5.2d); gradient flows through the primal only.
    # An auxiliary-time model gets r = 1 (the CM end time), a constant without tangent.
    ones = torch.ones_like(t)
    f_cm, f_dot = torch.func.jvp(lambda x, tt: call(student, x, tt, y, ones), (xt, t), (v, ones))
    f_bar = f_cm.detach()
    target = v + (1 - tb) * f_dot.detach()
    g = f_bar - target
    alpha = 1 - tb.pow(p)
    v_tar = f_bar - alpha * g.clamp(-clip, clip)
    e = _per_sample_mse(f_cm, v_tar)
    l_norm = e / (e.detach() + norm_eps).sqrt()
    loss_cm = (torch.cos(math.pi * t / 2) * l_norm).mean()
    loss = loss_cm + loss_fm
    return torch.nan_to_num(loss, nan=0.0), loss_cm.detach(), loss_fm.detach()


def meanflow_loss(student, teacher, x1, y, t, r, eps, null_class, cfgw=1.75, glow=0.125, ghigh=1.0, norm_eps=1e-3):
    """§5.7 MeanFlow in FACM's convention, for an auxiliary-time model F(x, t, y, r) = average velocity from t to r.
    The caller passes t ≤ r (the reference samples two times and takes t = min, r = max). JVP of
    (x, τ, ρ) ↦ F(x, τ, y, ρ) at (x_t, t, r) along (v, 1, 0); target v + (r − t)·Ḟ (stop-gradient);
    per sample e / sg(e + c) (norm-L2 weighting with exponent 1); loss = loss_cm = mean_B, loss_fm = 0.
    v is the velocity of §5.2b (teacher or student called with r = t)."""
    if not has_aux_time(student):
        raise ValueError("meanflow_loss needs a model with the auxiliary time embedder (cfg.aux_time)")
    if bool((r < t).any()):
        raise ValueError(f"meanflow_loss wants t <= r, got t {t.tolist()} r {r.tolist()}")
    xt, u = _interpolant(x1, eps, t)
    v = cfg_velocity(student, teacher, xt, u, t, y, null_class, cfgw, glow, ghigh)
    f, f_dot = torch.func.jvp(lambda x, tt, rr: student(x, tt, y, r=rr), (xt, t, r),
                              (v, torch.ones_like(t), torch.zeros_like(r)))
    target = v + (r - t)[:, None, None, None] * f_dot.detach()
    e = _per_sample_mse(f, target.detach())
    loss_cm = (e / (e.detach() + norm_eps)).mean()
    return torch.nan_to_num(loss_cm, nan=0.0), loss_cm.detach(), torch.zeros((), dtype=loss_cm.dtype)


def scm_loss(student, teacher, x1, y, t, eps, null_class, step, warmup=10000, cfgw=1.75, glow=0.125, ghigh=1.0,
             norm_eps=0.1):
    """§5.7 sCM as FACM's file reproduces it, with weight 1 in place of the learned log-variance weighting (its module
    is commented out upstream). JVP of (x, τ) ↦ F(x, τ, y) at (x_t, t) along (v, 1);
    ramp = min(1, step / warmup) (1 when warmup ≤ 0); g = cos(πt/2)·(F̄ − v − (1 − t)·Ḟ·ramp);
    g ← g / (rms_b(g) + c) with the rms over the C·H·W elements of each sample;
    per sample mean (F − sg(F̄ − g))²;
    loss = loss_cm = mean_B, loss_fm = 0. v is the velocity of §5.2b."""
    tb = t[:, None, None, None]
    xt, u = _interpolant(x1, eps, t)
    v = cfg_velocity(student, teacher, xt, u, t, y, null_class, cfgw, glow, ghigh)
    ramp = 1.0 if warmup <= 0 else min(1.0, step / warmup)
    f, f_dot = torch.func.jvp(lambda x, tt: student(x, tt, y), (xt, t), (v, torch.ones_like(t)))
    f_bar = f.detach()
    g = torch.cos(math.pi * tb / 2) * (f_bar - v - (1 - tb) * f_dot.detach() * ramp)
    rms = g.pow(2).flatten(1).mean(dim=1).sqrt()[:, None, None, None]
    g = g / (rms + norm_eps)
    loss_cm = _per_sample_mse(f, f_bar - g).mean()
    return torch.nan_to_num(loss_cm, nan=0.0), loss_cm.detach(), torch.zeros((), dtype=loss_cm.dtype)
