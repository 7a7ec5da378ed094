#!/usr/bin/python3
"""gen_fixtures_groups.py - optimizers with parameter groups, trained by PyTorch 1.13, for
tests/unit/test_optim_groups.c.

Run once with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/gen_fixtures_groups.py

It writes tests/fixtures/optim_groups.safetensors. One small model,
nn.Sequential(Linear(6, 8), ReLU(), Linear(8, 3)) with cross-entropy (mean), trains for STEPS
steps on fixed batches of BATCH samples under each optimizer variant. Parameters go to
groups as tkrun assigns them: the matching pattern of MATCH ("*.bias" -> group 1, "2.weight"
-> group 2; as in PyTorch, a parameter two patterns match is an error), the rest is group 0
(the optimizer's defaults), and frozen parameters (requires_grad False) are in no group. PyTorch's param_groups are listed in that order.

Tensors (float32 unless said otherwise; k = 0..STEPS-1):
  init.<p>            the initial value of parameter <p> (0.weight (8,6), 0.bias (8),
                      2.weight (3,8), 2.bias (3)); every variant starts from these
  x (STEPS, BATCH, 6), y (STEPS, BATCH) class ids: batch k
  <v>.<p> (STEPS, *shape): parameter <p> after update k+1 of variant <v>
  <v>.loss (STEPS): the loss of batch k, before update k+1
  clip.norm (), clip.grad.<p>: at init weights and batch 0, the total norm returned by
                      torch.nn.utils.clip_grad_norm_(max_norm=CLIP) and the clipped gradients;
                      clip_frozen.*: the same with 0.weight frozen (no gradient)
__metadata__:
  <v>                 "optimizer=<sgd|adam|adamw|rmsprop|adagrad> frozen=<names or ->
                      clip=<max_norm or 0>" (clip > 0: clip_grad_norm_ before every update)
  <v>.group<g>        group g's full settings as PyTorch holds them in param_groups, in
                      tkrun's names (lr, weight_decay, momentum, dampening, nesterov, beta1,
                      beta2, eps, amsgrad, alpha, centered, lr_decay,
                      initial_accumulator_value; booleans as 0/1)
  <v>.assign          "<p>=<group>" for every parameter (-1 frozen)
  match, steps, batch, clip, torch

Optimizers run with foreach=None, which torch 1.13 turns into foreach=False: the
single-tensor path, one parameter at a time.
"""
import fnmatch
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import save  # noqa: E402

STEPS = 50
BATCH = 5
CLIP = 0.2
MATCH = ["*.bias", "2.weight"]
NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]

# (optimizer, default settings, group 1 settings, group 2 settings, frozen, clip)
VARIANTS = {
    "sgd_plain": ("sgd", dict(lr=0.1, weight_decay=1e-3), dict(lr=0.01, weight_decay=0.0),
                  dict(lr=0.05), [], 0),
    # Group 2 keeps no momentum buffer while the others do.
    "sgd_momentum": ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3),
                     dict(lr=0.01, weight_decay=0.0), dict(lr=0.05, momentum=0.0), [], 0),
    "sgd_nesterov": ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
                     dict(lr=0.01, weight_decay=0.0), dict(lr=0.05, momentum=0.5),
                     ["0.weight"], 0),
    "sgd_wd": ("sgd", dict(lr=0.1, weight_decay=0.05), dict(lr=0.01, weight_decay=0.1),
               dict(lr=0.05), [], 0),
    "adam": ("adam", dict(lr=0.01, weight_decay=1e-3), dict(lr=0.001, weight_decay=0.0),
             dict(lr=0.005, betas=(0.8, 0.99)), [], 0),
    "adam_amsgrad": ("adam", dict(lr=0.01, weight_decay=1e-3, amsgrad=True),
                     dict(lr=0.001, weight_decay=0.0), dict(lr=0.005), ["0.weight"], 0),
    "adamw": ("adamw", dict(lr=0.01, weight_decay=1e-2), dict(lr=0.001, weight_decay=0.0),
              dict(lr=0.005, eps=1e-6), [], 0),
    "adam_clip": ("adam", dict(lr=0.01, weight_decay=1e-3), dict(lr=0.001, weight_decay=0.0),
                  dict(lr=0.005), [], CLIP),
    "rmsprop": ("rmsprop", dict(lr=0.01, weight_decay=1e-3), dict(lr=0.001, weight_decay=0.0),
                dict(lr=0.005, alpha=0.9), [], 0),
    "rmsprop_momentum": ("rmsprop", dict(lr=0.001, momentum=0.9, weight_decay=1e-3),
                         dict(lr=1e-4, weight_decay=0.0), dict(lr=5e-4, momentum=0.0), [], 0),
    # Groups keep three, two and one slots.
    "rmsprop_centered": ("rmsprop", dict(lr=0.001, centered=True, momentum=0.5,
                                         weight_decay=1e-3),
                         dict(lr=1e-4, weight_decay=0.0, momentum=0.0),
                         dict(lr=5e-4, centered=False), ["0.weight"], 0),
    # One initial_accumulator_value for all groups: PyTorch 1.13's Adagrad.__init__ fills
    # every accumulator with the constructor's value and ignores a group's own, where tkrun
    # uses each group's.
    "adagrad": ("adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1,
                                weight_decay=1e-3),
                dict(lr=0.01, weight_decay=0.0), dict(lr=0.05, lr_decay=0.0, eps=1e-6),
                [], 0),
}

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}
TK_KEYS = ["lr", "weight_decay", "momentum", "dampening", "nesterov", "beta1", "beta2", "eps",
           "amsgrad", "alpha", "centered", "lr_decay", "initial_accumulator_value"]


def group_of(name, frozen):
    """tkrun's rule: frozen -> -1, else the first matching pattern's group, else 0."""
    if name in frozen:
        return -1
    for k, pattern in enumerate(MATCH):
        if fnmatch.fnmatchcase(name, pattern):
            return k + 1
    return 0


def model(init, frozen):
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(init[name])
            p.requires_grad_(name not in frozen)
    return net


def tk_words(group):
    """A param group's settings in tkrun's names."""
    h = {k: v for k, v in group.items() if k in TK_KEYS}
    if "betas" in group:
        h["beta1"], h["beta2"] = group["betas"]
    return " ".join(f"{k}={int(v) if isinstance(v, bool) else repr(float(v))}"
                    for k, v in sorted(h.items()))


def train(v, init, xs, ys, out, meta):
    kind, default, g1, g2, frozen, clip = VARIANTS[v]
    net = model(init, frozen)
    params = dict(net.named_parameters())
    groups = [[], [], []]
    for name in NAMES:
        if group_of(name, frozen) >= 0:
            groups[group_of(name, frozen)].append(params[name])
    # Group 0 takes the defaults; an empty group 0 (everything it would hold is frozen) is
    # kept so the group numbers stay tkrun's.
    opt = OPTIMIZERS[kind]([{"params": groups[0]}, dict(g1, params=groups[1]),
                            dict(g2, params=groups[2])], **default)
    hist = {name: [] for name in NAMES}
    losses = []
    for k in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(net(xs[k]), ys[k])
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad],
                                           clip)
        opt.step()
        losses.append(loss.detach())
        for name in NAMES:
            hist[name].append(params[name].detach().clone())
    for name in NAMES:
        out[f"{v}.{name}"] = torch.stack(hist[name])
    out[f"{v}.loss"] = torch.stack(losses)
    meta[v] = f"optimizer={kind} frozen={','.join(frozen) or '-'} clip={clip}"
    for g, group in enumerate(opt.param_groups):
        meta[f"{v}.group{g}"] = tk_words(group)
    meta[f"{v}.assign"] = " ".join(f"{n}={group_of(n, frozen)}" for n in NAMES)


def clip_case(prefix, init, x, y, frozen, out):
    net = model(init, frozen)
    F.cross_entropy(net(x), y).backward()
    trained = [p for p in net.parameters() if p.requires_grad]
    norm = torch.nn.utils.clip_grad_norm_(trained, CLIP)
    assert norm > CLIP, (prefix, norm)
    out[prefix + ".norm"] = norm.detach().clone()
    for name, p in net.named_parameters():
        if p.requires_grad:
            out[f"{prefix}.grad.{name}"] = p.grad.clone()


def main():
    assert torch.__version__.startswith("1.13"), torch.__version__
    torch.manual_seed(30)
    init_net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(),
                                   torch.nn.Linear(8, 3))
    init = {n: p.detach().clone() for n, p in init_net.named_parameters()}
    assert list(init) == NAMES
    xs = torch.randn(STEPS, BATCH, 6)
    ys = torch.randint(0, 3, (STEPS, BATCH))
    out = {f"init.{n}": t for n, t in init.items()}
    out["x"] = xs
    out["y"] = ys.to(torch.float32)
    meta = {}
    for v in VARIANTS:
        train(v, init, xs, ys, out, meta)
    clip_case("clip", init, xs[0], ys[0], [], out)
    clip_case("clip_frozen", init, xs[0], ys[0], ["0.weight"], out)
    meta.update(match=",".join(MATCH), steps=STEPS, batch=BATCH, clip=CLIP,
                torch=torch.__version__)
    save("optim_groups.safetensors", out, meta)


if __name__ == "__main__":
    main()
