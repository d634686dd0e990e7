#!/usr/bin/env python3
"""The FACM training objective of facm-spec.md §5.2 in plain PyTorch, written from the spec (no upstream code), in the
official code's style: teacher velocity with CFG, the FM anchor at time 2 − t, and the CM term through
torch.func.jvp with tangents (v, 1) on (x_t, t). Used by facm_step_bench.py (timing) and, later, by the fixture
generator of the FACM issue.

Conventions (§0): t = 0 noise, t = 1 data; x_t = t·x1 + (1 − t)·eps.
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


def facm_loss(student, teacher, x1, y, t, eps, null_class, cfgw=1.75, glow=0.125, ghigh=1.0, p=0.5):
    """Total loss L = mean_B L_CM + mean_B L_FM (§5.2e) and its two parts. `teacher` may be None (no distillation:
    v = v_u + w(u − v_u) with v_u from the student without grad, §5.2b)."""
    tb = t[:, None, None, None]
    xt = tb * x1 + (1 - tb) * eps
    u = x1 - eps
    in_interval = (t >= glow) & (t <= ghigh)
    y_u = torch.where(in_interval, torch.full_like(y, null_class), y)
    with torch.no_grad():
        if teacher is not None:
            v_c = teacher(xt, t, y)
            v_u = teacher(xt, t, y_u)
        else:
            v_c = u
            v_u = student(xt, t, y_u)
        v = v_u + cfgw * (v_c - v_u)
    # FM anchor at the expanded time 2 − t (§5.2c)
    f_fm = student(xt, 2 - t, y)
    mse, cos = fm_terms(f_fm, v)
    loss_fm = (mse + cos).mean()
    # CM term: primal and tangent in one forward-mode pass (§5.2d); gradient flows through the primal only
    f_cm, f_dot = torch.func.jvp(lambda x, tt: student(x, tt, y), (xt, t), (v, torch.ones_like(t)))
    f_bar = f_cm.detach()
    target = v + (1 - tb) * f_dot.detach()
    g = f_bar - target
    alpha = 1 - tb.pow(p)
    v_tar = f_bar - alpha * g.clamp(-1, 1)
    e = (f_cm - v_tar).pow(2).flatten(1).mean(dim=1)
    l_norm = e / (e.detach() + 1e-3).sqrt()
    loss_cm = (torch.cos(math.pi * t / 2) * l_norm).mean()
    loss = loss_cm + loss_fm
    return torch.nan_to_num(loss, nan=0.0), loss_cm.detach(), loss_fm.detach()
