#!/usr/bin/python3
"""gen_fixtures_summary.py - what torchinfo 1.8.0 prints for the PyTorch twins of
examples/fashion_mnist/{mlp,cnn,resnet}.lua, computed from the modules by hand (torchinfo is
not packaged in Debian), so `tkrun summary` can be checked against it without PyTorch.

    /usr/bin/python3 tests/gen_fixtures_summary.py

Writes tests/fixtures/summary_<name>.txt: the table of
torchinfo.summary(model, input_size=(64, 1, 28, 28), col_names=("output_size", "num_params",
"mult_adds")) with its defaults (depth 3, col_width 25, row_settings ("depth",)).

The rules follow torchinfo 1.8.0 (torchinfo.py, layer_info.py, model_statistics.py,
formatting.py), applied with forward hooks on every module:
  - rows in forward-pre-hook order; a module's depth is its nesting level (the model is 0);
    depth-idx counts rows per depth over the whole table; names "├─T: d-i", deeper levels
    "│    " * (d - 1) + "└─T: d-i"; the model's own row has neither prefix nor index;
  - Param #: a leaf's parameter count ("--" when 0); a container's parameters not held by its
    children ("--" when 0);
  - Mult-Adds of a leaf, per parameter tensor named weight or bias: Conv layers
    count(param) * N * prod(spatial output dims), others count(param) * N ("--" when 0);
    containers show "--" above the maximum depth;
  - totals over leaves: params, trainable params, mult-adds; forward/backward pass size is
    2 * output bytes of each leaf that has parameters; params size the leaves' parameter
    bytes; input size sys.getsizeof of the input's storage (the tensor's bytes plus the
    storage object's own 56 bytes in torch 1.13, as torchinfo measures it); sizes in MB of 1e6 bytes, two
    decimals; mult-adds in M (or G, T) with two decimals unless integral.
"""
import math
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures_models import cnn, resnet  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
BATCH = 64
COL_WIDTH = 25
N_COLS = 3
MAX_DEPTH = 3


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512),
                         nn.ReLU(), nn.Linear(512, 10))


class Row:
    def __init__(self, module, depth):
        self.module = module
        self.depth = depth
        self.leaf = not any(module.children())
        self.cls = module.__class__.__name__
        params = list(module.parameters())
        self.params = sum(p.numel() for p in params)
        self.trainable = sum(p.numel() for p in params if p.requires_grad)
        self.param_bytes = sum(p.numel() * p.element_size() for p in params)
        self.output = []
        self.output_bytes = 0
        self.macs = 0
        self.children = []
        self.index = None


def collect(model, x):
    rows, hooks = [], []

    def walk(module, depth):
        def pre(mod, inputs):
            rows.append(Row(mod, depth))
            mod._summary_row = rows[-1]

        def post(mod, inputs, output):
            r = mod._summary_row
            r.output = list(output.size())
            r.output_bytes = output.element_size() * output.numel()
            for name, p in mod.named_parameters():
                if name in ("weight", "bias"):
                    if "Conv" in r.cls:
                        r.macs += p.numel() * math.prod(r.output[:1] + r.output[2:])
                    else:
                        r.macs += r.output[0] * p.numel()
                elif "weight" in name or "bias" in name:
                    r.macs += math.prod(r.output[:2]) * p.numel()

        hooks.append(module.register_forward_pre_hook(pre))
        hooks.append(module.register_forward_hook(post))
        if depth <= MAX_DEPTH:
            for child in module.children():
                walk(child, depth + 1)

    walk(model, 0)
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    counters = {}
    for i, r in enumerate(rows):
        counters[r.depth] = counters.get(r.depth, 0) + 1
        r.index = counters[r.depth]
        for later in rows[i + 1:]:
            if later.depth <= r.depth:
                break
            r.children.append(later)
    return rows


def leftover(r):
    return r.params - sum(c.params if c.leaf else leftover(c) for c in r.children)


def leftover_trainable(r):
    return r.trainable - sum(c.trainable if c.leaf else leftover_trainable(c)
                             for c in r.children)


def name_of(r):
    if r.depth == 0:
        return r.cls
    start = "├─" if r.depth == 1 else "│    " * (r.depth - 1) + "└─"
    return f"{start}{r.cls}: {r.depth}-{r.index}"


def params_text(r):
    if r.params == 0:
        return "--"
    if r.leaf or r.depth == MAX_DEPTH:
        return f"{r.params:,}" if r.trainable else f"({r.params:,})"
    left = leftover(r)
    return f"{left:,}" if left > 0 else "--"


def macs_text(r):
    if r.macs <= 0:
        return "--"
    if r.leaf:
        return f"{r.macs:,}"
    if r.depth == MAX_DEPTH:
        return f"{sum(c.macs for c in r.children if c.leaf):,}"
    return "--"


def readable(num):
    for unit, factor in (("T", 1e12), ("G", 1e9)):
        if num >= factor:
            break
    else:
        unit, factor = "M", 1e6
    value = num / factor
    return f" ({unit}): " + (f"{int(value):,d}" if value.is_integer() else f"{value:,.2f}")


def table(model):
    x = torch.rand(BATCH, 1, 28, 28)
    rows = collect(model, x)
    width = 40
    longest = max(len(name_of(r).split("─")[-1]) + r.depth * 5 + 1 for r in rows)
    if longest >= width:
        width = math.ceil(longest / 5) * 5

    def line(cells):
        text = f"{cells[0]:<{width}} "
        for c in cells[1:]:
            text += f"{c:<{COL_WIDTH}} "
        return text.rstrip() + "\n"

    divider = "=" * (N_COLS * COL_WIDTH + width)
    out = divider + "\n"
    out += line(["Layer (type:depth-idx)", "Output Shape", "Param #", "Mult-Adds"])
    out += divider + "\n"
    total = trainable = macs = out_bytes = param_bytes = 0
    for r in rows:
        out += line([name_of(r), str(r.output) if r.output else "--", params_text(r),
                     macs_text(r)])
        if r.leaf:
            macs += r.macs
            if r.params > 0:
                out_bytes += 2 * r.output_bytes
            total += r.params
            trainable += r.trainable
            param_bytes += r.param_bytes
        else:
            total += max(leftover(r), 0)
            trainable += max(leftover_trainable(r), 0)
    # torchinfo's measure: untyped_storage() where torch has it, else storage() (1.13)
    storage = x.untyped_storage() if hasattr(x, "untyped_storage") else x.storage()
    input_bytes = sys.getsizeof(storage)
    out += divider + "\n"
    out += f"Total params: {total:,}\nTrainable params: {trainable:,}\n"
    out += f"Non-trainable params: {total - trainable:,}\n"
    out += f"Total mult-adds{readable(macs)}\n{divider}\n"
    out += f"Input size (MB): {input_bytes / 1e6:0.2f}\n"
    out += f"Forward/backward pass size (MB): {out_bytes / 1e6:0.2f}\n"
    out += f"Params size (MB): {param_bytes / 1e6:0.2f}\n"
    out += f"Estimated Total Size (MB): {(input_bytes + out_bytes + param_bytes) / 1e6:0.2f}\n"
    return out + divider + "\n"


def main():
    assert torch.__version__.startswith("1.13"), torch.__version__
    torch.manual_seed(0)
    for name, make in [("mlp", mlp), ("cnn", cnn), ("resnet", resnet)]:
        path = os.path.join(FIXTURES, f"summary_{name}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(table(make()))
        print("wrote", path)


if __name__ == "__main__":
    main()
