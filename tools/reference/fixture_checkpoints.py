"""The two PyTorch-pickle fixtures for the Java checkpoint reader (facm-spec.md §8): tiny_ema.pt and tiny_emas.pt.

Weights come from the Philox scheme (philox_weights.py) with distinct seeds per role, so a reader that picks the
wrong entry is caught by value:
  seed 1234 = the weights the loader rule must return (same as tiny_forward.safetensors),
  seed 1235 = the training weights under 'model' (must NOT be picked when an EMA is present),
  seed 1236 = the σ_rel 0.05 EMA copy ema_models.0 (must NOT be picked: the rule takes ema_models.1).
"""
import argparse
from collections import OrderedDict

import torch

import lightningdit as ld

SEED_EMA = 1234
SEED_MODEL = 1235
SEED_EMA0 = 1236


def _state(cfg, seed):
    """A real state_dict() (an OrderedDict carrying torch's _metadata, pickled like any trainer's), float32 on CPU."""
    return ld.build(cfg, seed=seed, dtype=torch.float32, device="cpu").state_dict()


def _small_optimizer_state():
    """A tiny AdamW-shaped optimizer state: exercises ints as dict keys, tuples, floats, bools and small tensors."""
    return {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.full((4,), 0.25),
                          "exp_avg_sq": torch.full((4,), 0.0625)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                              "amsgrad": False, "params": [0]}]}


def write_tiny_ema(cfg, path):
    """LightningDiT-trainer layout: {'ema': fp32 state dict, 'model': 'module.'-prefixed bf16 copy of other
    weights, 'opt', 'config'}. The loader rule (no 'emas' → take 'ema') must return seed-1234 weights exactly."""
    ema = _state(cfg, SEED_EMA)
    model = OrderedDict(("module." + k, v.to(torch.bfloat16)) for k, v in _state(cfg, SEED_MODEL).items())
    checkpoint = {"ema": ema, "model": model, "opt": _small_optimizer_state(),
                  "config": {"model": cfg.to_dict(), "note": "facm-engine reference fixture (tools/reference)"}}
    torch.save(checkpoint, path)
    return {"entries": "ema (fp32, seed 1234), model (module.-prefixed, bf16, seed 1235), opt, config",
            "expected": "loader returns ema == Philox seed 1234 weights, fp32, bit-exact"}


def write_tiny_emas(cfg, path):
    """FACM-trainer layout: {'model': 'module.'-prefixed fp32 weights, 'emas': PostHocEMA state with two copies
    (index 1 = σ_rel 0.2 in bf16), 'opt', 'args' (argparse.Namespace), 'epoch', 'step', 'scheduler'}.
    The loader rule ('emas' present → ema_models.1.ema_model.*) must return bf16-rounded seed-1234 weights."""
    model = OrderedDict(("module." + k, v) for k, v in _state(cfg, SEED_MODEL).items())
    emas = OrderedDict()
    for index, seed in ((0, SEED_EMA0), (1, SEED_EMA)):
        emas[f"ema_models.{index}.initted"] = torch.tensor(True)
        emas[f"ema_models.{index}.step"] = torch.tensor(5)
        for k, v in _state(cfg, seed).items():
            emas[f"ema_models.{index}.ema_model.{k}"] = v.to(torch.bfloat16)
    args = argparse.Namespace(model="LightningDiT-tiny", distill=True, cfgw=1.75, p=0.5, mean=0.8, std=1.6, lr=1e-4,
                              ema_sigma_rels=[0.05, 0.2])
    checkpoint = {"model": model, "emas": emas, "opt": _small_optimizer_state(), "args": args, "epoch": 0,
                  "step": 5, "scheduler": None}
    torch.save(checkpoint, path)
    return {"entries": "model (module.-prefixed fp32, seed 1235), emas: ema_models.{0,1}.initted (bool), "
                       ".step (int64), ema_models.0.ema_model.* (bf16, seed 1236), ema_models.1.ema_model.* "
                       "(bf16, seed 1234), opt, args (argparse.Namespace), epoch, step, scheduler (None)",
            "expected": "loader returns ema_models.1.ema_model.* == bf16(Philox seed 1234 weights) (RNE), bit-exact"}


def check_round_trip(cfg, ema_path, emas_path):
    """Reads both files back with torch.load and checks the entries the Java reader will be tested on."""
    want = _state(cfg, SEED_EMA)
    ema = torch.load(ema_path, map_location="cpu", weights_only=False)
    for k, v in want.items():
        if not torch.equal(ema["ema"][k], v):
            raise AssertionError(f"{ema_path}: ema[{k}] does not round-trip")
    emas = torch.load(emas_path, map_location="cpu", weights_only=False)["emas"]
    for k, v in want.items():
        got = emas["ema_models.1.ema_model." + k]
        if got.dtype != torch.bfloat16 or not torch.equal(got, v.to(torch.bfloat16)):
            raise AssertionError(f"{emas_path}: ema_models.1.ema_model.{k} is not bf16(seed {SEED_EMA})")
