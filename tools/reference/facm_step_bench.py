#!/usr/bin/env python3
"""Times one FACM distillation step (facm-spec.md §5.2: two teacher passes, FM pass, torch.func.jvp pass with math
attention, backward, grad clip 1.0, AdamW lr 1e-4 betas (0.9, 0.999), one EMA update) in PyTorch, the official
code's way, for the side-by-side comparison with bench/FacmTrainStep. bf16 autocast; eager, or compiled
(--modes eager,compile); CUDA events around each whole step, median; torch.cuda.max_memory_allocated.

Compiled (--compile-strategy):
  model    torch.compile(student) and torch.compile(teacher), the loss code unchanged, as the official code compiles
           its model (the torch.func.jvp pass then runs through the compiled student);
  modules  the teacher and the student's FM pass compiled, the JVP pass on the eager student (for a PyTorch whose
           compiled modules do not work under torch.func.jvp);
  auto     model, and modules if that raises (the default); the row's "compile" says which one ran.

    python3 tools/reference/facm_step_bench.py --models XL/1 --batches 16,32 --modes eager,compile --json out.json
"""
import argparse
import copy
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import facm_objective  # noqa: E402
import lightningdit_config  # noqa: E402
from train_step_bench import make_model  # noqa: E402

EMA_DECAY = 0.9999


class FmCompiledJvpEager(torch.nn.Module):
    """The student for the 'modules' strategy: facm_loss calls the student twice per step, the FM anchor first and
    then inside torch.func.jvp; the first call of each step goes to the compiled module, the second to the eager one."""

    def __init__(self, eager, compiled):
        super().__init__()
        self.eager, self.compiled, self.calls = eager, compiled, 0
        self.cfg = getattr(eager, "cfg", None)

    def forward(self, *args, **kwargs):
        self.calls += 1
        return (self.compiled if self.calls % 2 == 1 else self.eager)(*args, **kwargs)


def run_steps(student_call, teacher_call, student, opt, ema, cfg, x1, y, steps, warmup):
    """Times warmup + steps whole steps; returns the sorted step times (ms) after the warm-up."""
    b = x1.shape[0]
    params = [p for p in student.parameters() if p.requires_grad]
    times = []
    for i in range(warmup + steps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            t = facm_objective.sample_t(b, "cuda")
            loss, _, _ = facm_objective.facm_loss(student_call, teacher_call, x1, y, t, torch.randn_like(x1),
                                                  cfg.null_class)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1 - EMA_DECAY)
        e.record()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(s.elapsed_time(e))
    return sorted(times)


def bench_step(name, b, mode, steps, warmup, strategy="auto"):
    """One row: the median step of `name` at batch b, eager or compiled; OOM and compile errors become fields."""
    dev = torch.cuda.get_device_name(0)
    row = {"model": name, "batch": b, "mode": mode, "gpu": dev, "attention": "math",
           "step": "2 teacher fwd (CFG), FM fwd+bwd, jvp + bwd, clip 1.0, AdamW, EMA"}
    cfg = lightningdit_config.preset(name)
    torch.cuda.empty_cache()
    student = make_model(cfg)  # the reference model computes attention explicitly (math attention)
    teacher = copy.deepcopy(student).eval().requires_grad_(False)
    params = [p for n, p in student.named_parameters() if n != "pos_embed"]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0)
    ema = [p.detach().clone() for p in params]
    x1 = torch.randn(b, cfg.in_channels, cfg.input_size, cfg.input_size, device="cuda")
    y = torch.randint(0, cfg.num_classes, (b,), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    tried = [] if mode == "eager" else (["model", "modules"] if strategy == "auto" else [strategy])
    t0 = time.time()
    try:
        if mode == "eager":
            times = run_steps(student, teacher, student, opt, ema, cfg, x1, y, steps, warmup)
        else:
            torch._dynamo.reset()
            teacher_c = torch.compile(teacher, dynamic=False)
            times, errors = None, []
            for how in tried:
                try:
                    student_c = torch.compile(student, dynamic=False)
                    call = student_c if how == "model" else FmCompiledJvpEager(student, student_c)
                    times = run_steps(call, teacher_c, student, opt, ema, cfg, x1, y, steps, warmup)
                    row["compile"] = how
                    break
                except torch.OutOfMemoryError:
                    raise
                except Exception as e:  # noqa: BLE001 - any compile failure moves on to the next strategy
                    errors.append(f"{how}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
                    torch._dynamo.reset()
                    teacher_c = torch.compile(teacher, dynamic=False)
            if errors:
                row["compile_errors"] = errors
            if times is None:
                row["error"] = "every compile strategy failed"
                return row
        ms = times[len(times) // 2]
        row.update({"ms": ms, "samples_per_s": b / ms * 1e3, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                    "min_ms": times[0], "max_ms": times[-1], "steps": steps, "warmup": warmup,
                    "seconds_incl_compile": time.time() - t0})
    except torch.OutOfMemoryError:
        row["oom"] = True
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    finally:
        del student, teacher, opt, ema
        torch.cuda.empty_cache()
    return row


def describe(row):
    head = f"{row['model']:6} batch {row['batch']:3} {row['mode']:7}"
    if row.get("oom"):
        return f"{head} out of memory (peak {row['peak_gib']:.1f} GiB)"
    if "error" in row:
        return f"{head} {row['error']}: {row.get('compile_errors')}"
    how = f" [{row['compile']}]" if "compile" in row else ""
    return (f"{head} {row['ms']:9.1f} ms/step {row['samples_per_s']:8.1f} samples/s  peak {row['peak_gib']:6.1f} GiB"
            f"{how}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="XL/1")
    ap.add_argument("--batches", default="16,32")
    ap.add_argument("--modes", default="eager")
    ap.add_argument("--compile-strategy", default="auto", choices=["auto", "model", "modules"])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("facm_step_bench.py needs a CUDA GPU")
    dev = torch.cuda.get_device_name(0)
    print(f"PyTorch {torch.__version__} on {dev}: FACM step (2 teacher passes, FM, torch.func.jvp with math attention,"
          f" backward, clip, AdamW, EMA), bf16 autocast, median of {args.steps}", flush=True)
    rows = []
    for name in args.models.split(","):
        for mode in args.modes.split(","):
            for b in [int(x) for x in args.batches.split(",")]:
                rows.append(bench_step(name, b, mode, args.steps, args.warmup, args.compile_strategy))
                print(describe(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "torch": torch.__version__, "gpu": dev}, f, indent=1)


if __name__ == "__main__":
    main()
