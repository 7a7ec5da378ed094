#!/usr/bin/python3
"""gen_fixtures_sched.py - learning-rate schedules from PyTorch 1.13 for tests/unit/test_sched.c.

Run once with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/gen_fixtures_sched.py

It writes tests/fixtures/sched.safetensors. Two parameter groups with lrs 0.1 and 0.01 (SGD;
the optimizer never moves anything, only the schedules matter) go through every schedule of
torch.optim.lr_scheduler that tkrun has, with and without warmup. Warmup is what tkrun
promises: SequentialLR([LinearLR(start_factor, 1.0, W), main], milestones=[W]).

For every case `<case>` the file holds
  <case>.lr     F64 (STEPS, 2): row k = each group's lr for the update after k updates
                (recorded before the (k+1)-th optimizer.step(); then scheduler.step())
  <case>.lr_lo  F32 (STEPS, 2): lr minus lr rounded to float32. The C reader serves tensors
                as float32; adding this back restores the lr to ~1e-14 relative, so the test
                can hold tkrun's closed forms to 1e-9 of PyTorch's recursive ones.
and __metadata__[<case>] = the spec as "key=value" words (kind, total_steps, the schedule's
options by their tk.sched names, anneal for onecycle's anneal_strategy, warmup_steps,
warmup_start_factor). An absent T_max or total_iters is the run after the warmup; the test
gives the other absent keys what this script gave PyTorch (no warmup, cos annealing).

reduce_on_plateau cases (`plateau_*`) instead hold <case>.metrics F64 (PLATEAU_STEPS) and
<case>.lr / <case>.lr_lo (PLATEAU_STEPS, 2): the lrs after scheduler.step(metrics[k]).
__metadata__ also has base_lrs ("0.1,0.01"), steps, plateau_steps and torch (the version).
"""
import math
import os
import sys
import warnings

import numpy as np
import torch
from torch.optim import lr_scheduler as S

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import save  # noqa: E402

STEPS = 300
PLATEAU_STEPS = 40
BASE_LRS = (0.1, 0.01)
WARMUP = dict(warmup_steps=25, warmup_start_factor=0.1)

# Options tkrun names as PyTorch does; total_steps is the run's length (tk_sched_spec's).
CASES = {
    "constant": dict(kind="constant", total_steps=STEPS),
    "step": dict(kind="step", total_steps=STEPS, step_size=30, gamma=0.5),
    "multistep": dict(kind="multistep", total_steps=STEPS, milestones=[50, 120, 200], gamma=0.3),
    "exponential": dict(kind="exponential", total_steps=STEPS, gamma=0.98),
    "cosine": dict(kind="cosine", total_steps=STEPS, eta_min=0.001),           # T_max: the run
    "cosine_tmax": dict(kind="cosine", total_steps=STEPS, T_max=100, eta_min=0.0),  # periodic
    "cosine_restarts": dict(kind="cosine_restarts", total_steps=STEPS, T_0=20, T_mult=2,
                            eta_min=1e-4),
    "cosine_restarts_t1": dict(kind="cosine_restarts", total_steps=STEPS, T_0=37, T_mult=1,
                               eta_min=0.0),
    "linear": dict(kind="linear", total_steps=STEPS, start_factor=0.25, end_factor=0.9,
                   total_iters=150),
    "linear_default": dict(kind="linear", total_steps=STEPS, start_factor=1 / 3, end_factor=1.0),
    "polynomial": dict(kind="polynomial", total_steps=STEPS, power=2.0),
    "polynomial_short": dict(kind="polynomial", total_steps=STEPS, power=0.5, total_iters=100),
    # total_steps 299: the recorded steps 0..299 reach the cycle's last allowed step (PyTorch
    # raises one step later).
    "onecycle": dict(kind="onecycle", total_steps=STEPS - 1, max_lr=0.5, pct_start=0.3,
                     div_factor=25.0, final_div_factor=1e4),
    "onecycle_linear": dict(kind="onecycle", total_steps=STEPS - 1, max_lr=0.2, pct_start=0.25,
                            anneal="linear", div_factor=10.0, final_div_factor=100.0),
}

PLATEAU = {
    "plateau_min_rel": dict(kind="reduce_on_plateau", mode="min", factor=0.5, patience=3,
                            threshold=1e-2, threshold_mode="rel", cooldown=0, min_lr=0.0),
    "plateau_max_abs": dict(kind="reduce_on_plateau", mode="max", factor=0.1, patience=2,
                            threshold=0.05, threshold_mode="abs", cooldown=2, min_lr=1e-4),
    # Patience 0 reduces on every bad evaluation until the floor: the last reduction would
    # move each lr by 1e-11, below PyTorch's eps of 1e-8, so it is skipped.
    "plateau_eps": dict(kind="reduce_on_plateau", mode="min", factor=0.1, patience=0,
                        threshold=1e-4, threshold_mode="rel", cooldown=1, min_lr=9.99999e-6),
}


def words(cfg):
    """The spec as 'key=value' words (floats by repr, which round-trips through strtod)."""
    out = []
    for k, v in cfg.items():
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        out.append(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(out)


def optimizer():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in BASE_LRS]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)],
                           lr=BASE_LRS[0])


def main_scheduler(opt, c):
    span = c["total_steps"] - c.get("warmup_steps", 0)  # tkrun's default T_max/total_iters
    kind = c["kind"]
    if kind == "constant":
        return S.ConstantLR(opt, factor=1.0, total_iters=0)
    if kind == "step":
        return S.StepLR(opt, step_size=c["step_size"], gamma=c["gamma"])
    if kind == "multistep":
        return S.MultiStepLR(opt, milestones=c["milestones"], gamma=c["gamma"])
    if kind == "exponential":
        return S.ExponentialLR(opt, gamma=c["gamma"])
    if kind == "cosine":
        return S.CosineAnnealingLR(opt, T_max=c.get("T_max") or span, eta_min=c["eta_min"])
    if kind == "cosine_restarts":
        return S.CosineAnnealingWarmRestarts(opt, T_0=c["T_0"], T_mult=c["T_mult"],
                                             eta_min=c["eta_min"])
    if kind == "linear":
        return S.LinearLR(opt, start_factor=c["start_factor"], end_factor=c["end_factor"],
                          total_iters=c.get("total_iters") or span)
    if kind == "polynomial":
        return S.PolynomialLR(opt, total_iters=c.get("total_iters") or span, power=c["power"])
    if kind == "onecycle":
        # The cycle spans the run after the warmup; tkrun schedules only lrs, so momentum is
        # not cycled.
        return S.OneCycleLR(opt, max_lr=c["max_lr"], total_steps=span, pct_start=c["pct_start"],
                            anneal_strategy=c.get("anneal", "cos"), cycle_momentum=False,
                            div_factor=c["div_factor"], final_div_factor=c["final_div_factor"])
    raise ValueError(kind)


def run(c):
    opt = optimizer()
    w = c.get("warmup_steps", 0)
    if w:
        warm = S.LinearLR(opt, start_factor=c["warmup_start_factor"], end_factor=1.0,
                          total_iters=w)
        sched = S.SequentialLR(opt, [warm, main_scheduler(opt, c)], milestones=[w])
    else:
        sched = main_scheduler(opt, c)
    rows = [[g["lr"] for g in opt.param_groups]]
    for _ in range(STEPS - 1):
        opt.step()
        sched.step()
        rows.append([g["lr"] for g in opt.param_groups])
    return rows


def metrics(seed, rising):
    """A noisy learning curve that improves, stalls, improves a little, then stalls."""
    g = np.random.default_rng(seed)
    k = np.arange(PLATEAU_STEPS)
    curve = 1.0 / (1.0 + 0.4 * np.minimum(k, 12)) + 0.05 * (k > 25) * np.minimum(k - 25, 4) * -1
    curve = curve + 0.01 * g.standard_normal(PLATEAU_STEPS)
    return (1.0 - curve) if rising else curve


def run_plateau(c, values):
    opt = optimizer()
    sched = S.ReduceLROnPlateau(opt, mode=c["mode"], factor=c["factor"], patience=c["patience"],
                                threshold=c["threshold"], threshold_mode=c["threshold_mode"],
                                cooldown=c["cooldown"], min_lr=c["min_lr"])
    rows = []
    for v in values:
        opt.step()
        sched.step(float(v))
        rows.append([g["lr"] for g in opt.param_groups])
    return rows


def put(out, name, rows):
    lr = np.array(rows, dtype=np.float64)
    lo = (lr - lr.astype(np.float32).astype(np.float64)).astype(np.float32)
    out[name + ".lr"] = torch.from_numpy(lr)
    out[name + ".lr_lo"] = torch.from_numpy(lo)


def main():
    assert torch.__version__.startswith("1.13"), torch.__version__
    # SequentialLR calls step(0) on the main schedule, which warns about the epoch argument.
    warnings.simplefilter("ignore")
    out, meta = {}, {}
    for name, cfg in CASES.items():
        for suffix, extra in (("", {}), ("_warm", WARMUP)):
            c = dict(cfg, **extra)
            put(out, name + suffix, run(c))
            meta[name + suffix] = words(c)
    for seed, (name, cfg) in enumerate(PLATEAU.items(), start=40):
        values = metrics(seed, rising=cfg["mode"] == "max")
        put(out, name, run_plateau(cfg, values))
        out[name + ".metrics"] = torch.from_numpy(values.astype(np.float64))
        meta[name] = words(cfg)
    # Every reduction the plateau cases promise happens (else the fixture tests nothing).
    for name in PLATEAU:
        assert len(set(out[name + ".lr"][:, 0].tolist())) >= 3, name
    meta.update(base_lrs=",".join(str(x) for x in BASE_LRS), steps=STEPS,
                plateau_steps=PLATEAU_STEPS, torch=torch.__version__)
    assert all(math.isfinite(v) for t in out.values() for v in t.flatten().tolist())
    save("sched.safetensors", out, meta)


if __name__ == "__main__":
    main()
