#!/usr/bin/env python3
"""Writes tiny_facm.safetensors: one stage-2 step of the consistency objectives (facm-spec.md §5.2 FACM, §5.7 MeanFlow
and sCM) on a tiny LightningDiT, loss terms and parameter gradients computed in float64 with PyTorch autograd and
torch.func.jvp (facm_objective.py), for the Java test src/test/java/facm/objectives/ConsistencyFixtureTest.java.

Usage (GPU host: PyTorch 2.x + numpy + safetensors, no network; the CPU works too, ~1 min):
    PYTHONUNBUFFERED=1 python3 tools/reference/make_facm_fixture.py OUTDIR [--device auto|cuda|cpu] [--inputs FILE]
then copy OUTDIR/tiny_facm.safetensors to src/test/resources/fixtures/.

Models: config "tiny-c4" of make_grad_fixture.py (depth 2, D 64, 4 heads, patch 2, 4×16×16 inputs, 10 classes; null
class 10); student = Philox weights v1 seed 1234, teacher = seed 4321 (neither stored). MeanFlow needs the auxiliary
time embedder: config "tiny-c4-aux" (same with aux_time on; its Philox weights, r_embedder included, from seed 1234
— the scheme's key order changes with the extra keys, so its other tensors differ from tiny-c4's too).
Inputs: input.x1 and input.eps of tiny_fm_grad.safetensors (batch 4; NOT stored again; metadata inputs_sum holds
their float64 sums so a test can see that it reads the same ones); t = [0.05, 0.6, 0.35, 0.9] (0.05 lies outside the
CFG interval [0.125, 1]); y = [3, 1, 7, 0]; MeanFlow r = [0.5, 0.95, 0.35, 1.0] (sample 2 has r = t).
Hyper-parameters: §5.1 defaults (CFG w 1.75 on t ∈ [0.125, 1], p 0.5, clip 1, norm-L2 c 1e-3); sCM step 2500 of a
10 000-step warm-up (ramp 0.25) and tangent normalization c 0.1.

Cases (metadata `cases` is the JSON of this table):
  facm_distill  FACM with the seed-4321 teacher (two teacher passes, CFG)
  facm_scratch  FACM without teacher: v = v_u + w(u − v_u), v_u from the student without gradient
  meanflow      MeanFlow on tiny-c4-aux without teacher (v_u from the student called with r = t); no teacher keeps
                the case to one model and covers the auxiliary-time student standing in for the teacher
  scm           sCM with the seed-4321 teacher

Stored (float32; computed in float64): per case C, output.C.loss, output.C.loss_fm, output.C.loss_cm (1,) (loss_fm is
0 for MeanFlow and sCM); output.C.grad_head (K, 16) = the first 16 values of ∂loss/∂key (row-major flattening of the
state-dict shape) for the K trainable keys in the order of metadata `keys.config` or `keys.config_aux` (the case's
config; comma-separated, sorted; pos_embed is not trainable); output.C.grad_norm (K,) = each gradient's L2 norm.
Packed per case rather than one tensor per key as in tiny_fm_grad: the header of 330 small tensors alone would be
~35 KB, over this fixture's budget.
Metadata: config, config_aux (JSON), seed, teacher_seed, cases, options, keys.config, keys.config_aux, inputs_from,
inputs_sum, t, y, r, torch, device, weight_scheme, generator, note, losses_fp64 (JSON of the float64 values),
fp32_vs_fp64 (JSON per case: the float32 model's loss errors and worst per-key gradient errors measured as the Java
test measures them, a guide for its tolerances), bf16_autocast (JSON per case: the loss under bf16 autocast, or the
error that stopped it).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import torch
except ImportError as e:  # pragma: no cover - environment problem, explain it
    raise SystemExit(f"make_facm_fixture.py needs torch: {e}")
try:
    from safetensors.torch import load_file, save_file
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"make_facm_fixture.py needs the safetensors package: {e}")

import facm_objective as fo
import lightningdit as ld
import philox_weights
from lightningdit_config import preset
from make_grad_fixture import pick_device

SEED = 1234
TEACHER_SEED = 4321
HEAD = 16
SIZE_LIMIT = 25_000
T_VALUES = [0.05, 0.6, 0.35, 0.9]
R_VALUES = [0.5, 0.95, 0.35, 1.0]
Y_VALUES = [3, 1, 7, 0]
SCM_STEP, SCM_WARMUP = 2500, 10000
OPTIONS = {"cfg_scale": 1.75, "cfg_low": 0.125, "cfg_high": 1.0, "relax_p": 0.5, "clip": 1.0, "norm_eps": 1e-3,
           "scm_norm_eps": 0.1}
CASES = {
    "facm_distill": {"kind": "facm", "teacher_seed": TEACHER_SEED, "config": "config", "step": 0},
    "facm_scratch": {"kind": "facm", "teacher_seed": None, "config": "config", "step": 0},
    "meanflow": {"kind": "meanflow", "teacher_seed": None, "config": "config_aux", "step": 0},
    "scm": {"kind": "scm", "teacher_seed": TEACHER_SEED, "config": "config", "step": SCM_STEP,
            "scm_warmup": SCM_WARMUP},
}
DEFAULT_INPUTS = os.path.join(HERE, "..", "..", "src", "test", "resources", "fixtures", "tiny_fm_grad.safetensors")


def log(msg):
    print(msg, flush=True)


def configs():
    base = preset("tiny", in_channels=4, input_size=16, name="tiny-c4")
    return {"config": base, "config_aux": preset("tiny", in_channels=4, input_size=16, aux_time=True,
                                                   name="tiny-c4-aux")}


def read_inputs(path):
    if not os.path.exists(path):
        raise SystemExit(f"inputs file {path} not found (pass --inputs: tiny_fm_grad.safetensors, made by "
                         "make_grad_fixture.py)")
    stored = load_file(path)
    x1, eps = stored["input.x1"].float(), stored["input.eps"].float()
    if tuple(x1.shape) != (4, 4, 16, 16) or x1.shape != eps.shape:
        raise SystemExit(f"{path}: input.x1 {tuple(x1.shape)} / input.eps {tuple(eps.shape)}, expected (4, 4, 16, 16)")
    return x1, eps


def run_case(case, weights, dtype, device, x1, eps, autocast=False):
    """(loss, loss_fm, loss_cm) as floats and {key: float64 CPU gradient} for one case with models in `dtype`."""
    spec = CASES[case]
    cfg = configs()[spec["config"]]
    student = ld.build(cfg, weights=weights[(spec["config"], SEED)], dtype=dtype, device=device)
    student.train()
    for name, p in student.named_parameters():
        p.requires_grad_(name != "pos_embed")
    teacher = None
    if spec["teacher_seed"] is not None:
        teacher = ld.build(cfg, weights=weights[(spec["config"], spec["teacher_seed"])], dtype=dtype, device=device)
        teacher.requires_grad_(False)
    x1d, epsd = x1.to(device, dtype), eps.to(device, dtype)
    t = torch.tensor(T_VALUES, dtype=torch.float32).to(device, dtype)  # float32 values, widened exactly
    r = torch.tensor(R_VALUES, dtype=torch.float32).to(device, dtype)
    y = torch.tensor(Y_VALUES, dtype=torch.int32, device=device)
    o = OPTIONS
    cfg_args = dict(cfgw=o["cfg_scale"], glow=o["cfg_low"], ghigh=o["cfg_high"])
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        if spec["kind"] == "facm":
            loss, loss_cm, loss_fm = fo.facm_loss(student, teacher, x1d, y, t, epsd, cfg.null_class, p=o["relax_p"],
                                                  clip=o["clip"], norm_eps=o["norm_eps"], **cfg_args)
        elif spec["kind"] == "meanflow":
            loss, loss_cm, loss_fm = fo.meanflow_loss(student, teacher, x1d, y, t, r, epsd, cfg.null_class,
                                                      norm_eps=o["norm_eps"], **cfg_args)
        else:
            loss, loss_cm, loss_fm = fo.scm_loss(student, teacher, x1d, y, t, epsd, cfg.null_class, spec["step"],
                                                 warmup=spec["scm_warmup"], norm_eps=o["scm_norm_eps"], **cfg_args)
    loss.backward()
    grads = {name: p.grad.detach().to("cpu", torch.float64) for name, p in student.named_parameters()
             if p.requires_grad}
    missing = sorted(name for name, p in student.named_parameters() if p.requires_grad and p.grad is None)
    if missing:
        raise SystemExit(f"{case}: no gradient for {missing}")
    return (float(loss.detach()), float(loss_fm), float(loss_cm)), grads


def head_and_norm(grads):
    """Sorted keys, (K, 16) heads and (K,) norms in float64."""
    keys = sorted(grads)
    heads, norms = [], []
    for key in keys:
        g = grads[key].flatten()
        if g.numel() < HEAD:
            raise SystemExit(f"{key} has {g.numel()} < {HEAD} values; the packed layout assumes at least {HEAD}")
        heads.append(g[:HEAD])
        norms.append(g.norm())
    return keys, torch.stack(heads), torch.stack(norms)


def errors_vs(ref_losses, ref_grads, losses, grads):
    """Errors of a lower-precision run, measured as the Java test measures them: loss terms relative (absolute for a
    zero reference), per key max |Δ head| / max(max |ref head|, rms of the reference gradient), relative norm."""
    names = ("loss", "loss_fm", "loss_cm")
    out = {}
    for n, ref, got in zip(names, ref_losses, losses):
        out[n + "_err"] = abs(got - ref) / abs(ref) if ref != 0 else abs(got - ref)
    worst_head, worst_norm = (0.0, ""), (0.0, "")
    for key, g in ref_grads.items():
        ref_head, got_head = g.flatten()[:HEAD], grads[key].flatten()[:HEAD]
        rms = float(g.norm()) / g.numel() ** 0.5
        scale = max(float(ref_head.abs().max()), rms, 1e-30)
        worst_head = max(worst_head, (float((got_head - ref_head).abs().max()) / scale, key))
        worst_norm = max(worst_norm, (abs(float(grads[key].norm()) - float(g.norm())) / max(float(g.norm()), 1e-30),
                                      key))
    out.update(worst_head_err=worst_head[0], worst_head_key=worst_head[1], worst_norm_err=worst_norm[0],
               worst_norm_key=worst_norm[1])
    return out


def three_digits(obj):
    """Floats of a JSON-able guide rounded to 3 significant digits (the fixture's budget is tight)."""
    if isinstance(obj, dict):
        return {k: three_digits(v) for k, v in obj.items()}
    return float(f"{obj:.3g}") if isinstance(obj, float) else obj


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--inputs", default=DEFAULT_INPUTS, help="tiny_fm_grad.safetensors (its input.x1, input.eps)")
    args = ap.parse_args()
    device = pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.out_dir, exist_ok=True)

    cfgs = configs()
    x1, eps = read_inputs(args.inputs)
    weights = {(name, seed): philox_weights.model_weights(cfgs[name], seed)
               for name in ("config", "config_aux") for seed in (SEED, TEACHER_SEED)}
    tensors, losses64, fp32, bf16 = {}, {}, {}, {}
    key_lists = {}  # per config: the sorted trainable keys, the same for every case of that config
    for case in CASES:
        (loss, loss_fm, loss_cm), grads = run_case(case, weights, torch.float64, device, x1, eps)
        losses64[case] = {"loss": loss, "loss_fm": loss_fm, "loss_cm": loss_cm}
        keys, heads, norms = head_and_norm(grads)
        if key_lists.setdefault(CASES[case]["config"], keys) != keys:
            raise SystemExit(f"{case}: trainable keys differ from the other cases of {CASES[case]['config']}")
        tensors[f"output.{case}.loss"] = torch.tensor([loss], dtype=torch.float32)
        tensors[f"output.{case}.loss_fm"] = torch.tensor([loss_fm], dtype=torch.float32)
        tensors[f"output.{case}.loss_cm"] = torch.tensor([loss_cm], dtype=torch.float32)
        tensors[f"output.{case}.grad_head"] = heads.float()
        tensors[f"output.{case}.grad_norm"] = norms.float()
        losses32, grads32 = run_case(case, weights, torch.float32, device, x1, eps)
        fp32[case] = errors_vs((loss, loss_fm, loss_cm), grads, losses32, grads32)
        try:
            (bf_loss, _, _), _ = run_case(case, weights, torch.float32, device, x1, eps, autocast=True)
            bf16[case] = {"loss": bf_loss, "rel_err": abs(bf_loss - loss) / abs(loss)}
        except Exception as e:  # a precision mode the host cannot do is reported, not fatal
            bf16[case] = {"error": f"{type(e).__name__}: {e}"}
        log(f"{case:13} loss {loss:.9f} (fm {loss_fm:.9f}, cm {loss_cm:.9f}); {len(keys)} keys, largest grad norm "
            f"{float(norms.max()):.4e}; fp32 vs float64: loss {fp32[case]['loss_err']:.2e}, head "
            f"{fp32[case]['worst_head_err']:.2e} ({fp32[case]['worst_head_key']}), norm "
            f"{fp32[case]['worst_norm_err']:.2e}; bf16 autocast {bf16[case]}")

    note = ("one stage-2 step (FACM with/without teacher, MeanFlow, sCM) on LightningDiT tiny-c4 (Philox weights v1, "
            "student seed 1234, teacher seed 4321, not stored; inputs x1/eps of tiny_fm_grad.safetensors): loss terms "
            "and parameter gradients in float64, grad_head (K,16) / grad_norm (K,) in the key order of "
            "keys.<the case's config>; "
            "see make_facm_fixture.py")
    meta = {"config": cfgs["config"].to_json(), "config_aux": cfgs["config_aux"].to_json(), "seed": str(SEED),
            "teacher_seed": str(TEACHER_SEED), "cases": json.dumps(CASES), "options": json.dumps(OPTIONS),
            "inputs_from": "tiny_fm_grad.safetensors",
            "inputs_sum": json.dumps({"x1": float(x1.double().sum()), "eps": float(eps.double().sum())}),
            "t": json.dumps(T_VALUES), "r": json.dumps(R_VALUES), "y": json.dumps(Y_VALUES),
            "torch": torch.__version__, "device": str(device), "weight_scheme": "philox-v1",
            "generator": "tools/reference/make_facm_fixture.py", "note": note,
            "losses_fp64": json.dumps(losses64), "fp32_vs_fp64": json.dumps(three_digits(fp32)),
            "bf16_autocast": json.dumps(three_digits(bf16))}
    meta.update({f"keys.{name}": ",".join(keys) for name, keys in key_lists.items()})
    path = os.path.join(args.out_dir, "tiny_facm.safetensors")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata=meta)
    os.chmod(path, 0o644)
    size = os.path.getsize(path)
    log(f"wrote {path} ({size} bytes, {len(tensors)} tensors)")
    if size > SIZE_LIMIT:
        raise SystemExit(f"{path} is {size} bytes, over the {SIZE_LIMIT}-byte budget for this fixture")


if __name__ == "__main__":
    main()
