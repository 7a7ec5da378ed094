#!/usr/bin/python3
"""gen_fixtures_pointwise.py - PyTorch 1.13 reference numbers for the activations, the graph
ops (add, concat, reshape) and the losses other than cross_entropy and mse.

Run once with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/gen_fixtures_pointwise.py

It writes tests/fixtures/<op>.safetensors (one file per op) with gen_fixtures.py's writer;
tests/fixtures/README.md lists every tensor and tests/unit/test_pointwise_fixtures.c reads
them. Everything is float32 computed by PyTorch itself. Each file seeds its own generator.

Naming, shared by every file:
  ops:    inputs (x, or a/b/... for several), one upstream gradient dy per output shape, and
          per attribute variant <v> the output y<v> and input gradients dx<v> (d<a>...),
          where <v> is "" for the defaults or a suffix such as "_tanh".
  losses: pred (N, ...) and target, and per variant the loss loss_<v> () and its gradient
          dpred_<v> = d loss / d pred, for <v> = mean, sum, and attribute variants such as
          b05_mean. The loss is the root of the backward pass (upstream gradient 1).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import save, leaf  # noqa: E402


def unary(name, x, variants):
    """variants: suffix -> f(x). One dy for all."""
    dy = torch.randn(x.shape)
    out = {"x": x, "dy": dy}
    for suffix, fn in variants.items():
        xl = leaf(x)
        y = fn(xl)
        y.backward(dy)
        out["y" + suffix] = y
        out["dx" + suffix] = xl.grad
    save(name + ".safetensors", out)


# A row of extremes for every activation: +-100 and +-50 overflow a naive exp in float32,
# and 0 pins the convention at the kink.
EXTREMES = torch.tensor([-100.0, -50.0, -20.0, 0.0, 50.0, 100.0])


def act_input(seed):
    torch.manual_seed(seed)
    x = torch.randn(4, 6) * 3
    x[3] = EXTREMES
    return x


def gen_activations():
    unary("leaky_relu", act_input(100), {
        "": F.leaky_relu, "_s02": lambda v: F.leaky_relu(v, negative_slope=0.2)})
    unary("elu", act_input(101), {"": F.elu, "_a05": lambda v: F.elu(v, alpha=0.5)})
    unary("gelu", act_input(102), {"": F.gelu, "_tanh": lambda v: F.gelu(v, approximate="tanh")})
    unary("silu", act_input(103), {"": F.silu})
    unary("hardtanh", act_input(107), {"": F.hardtanh,
                                       "_r": lambda v: F.hardtanh(v, min_val=-2.0, max_val=0.5)})
    unary("tanh", act_input(104), {"": torch.tanh})
    unary("sigmoid", act_input(105), {"": torch.sigmoid})
    # beta 2, threshold 10: 4 * 2 = 8 stays on the log side, 6 * 2 = 12 goes linear.
    x = act_input(106)
    x[2, :2] = torch.tensor([4.0, 6.0])
    unary("softplus", x, {"": F.softplus, "_b2": lambda v: F.softplus(v, beta=2, threshold=10)})


def gen_softmaxes():
    for seed, (name, fn) in enumerate((("softmax", F.softmax), ("log_softmax", F.log_softmax)),
                                      start=110):
        torch.manual_seed(seed)
        x = torch.randn(4, 5) * 2
        x[2] = torch.tensor([100.0, -100.0, 0.0, 100.5, -3.0])  # exp overflows float32
        x[3] = torch.tensor([-50.0, -60.0, -55.0, -52.0, -80.0])  # exp underflows to 0
        x3 = torch.randn(2, 3, 4) * 2
        x3[1, :, 0] = torch.tensor([60.0, -60.0, 61.0])
        dy, dy3 = torch.randn(4, 5), torch.randn(2, 3, 4)
        out = {"x": x, "dy": dy, "x3": x3, "dy3": dy3}
        xl = leaf(x)
        y = fn(xl, dim=1)
        y.backward(dy)
        out.update({"y": y, "dx": xl.grad})
        for dim in (1, 2):
            xl = leaf(x3)
            y = fn(xl, dim=dim)
            y.backward(dy3)
            out.update({f"y3_d{dim}": y, f"dx3_d{dim}": xl.grad})
        save(name + ".safetensors", out)


def gen_graph_ops():
    torch.manual_seed(120)
    a, b, dy = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    al, bl = leaf(a), leaf(b)
    y = al + bl
    y.backward(dy)
    save("add.safetensors", {"a": a, "b": b, "y": y, "dy": dy, "da": al.grad, "db": bl.grad})

    torch.manual_seed(121)
    a, b = torch.randn(3, 2), torch.randn(3, 4)
    p, q, r = torch.randn(3, 2, 1), torch.randn(3, 2, 3), torch.randn(3, 2, 2)
    dy, dy3 = torch.randn(3, 6), torch.randn(3, 2, 6)
    out = {"a": a, "b": b, "p": p, "q": q, "r": r, "dy": dy, "dy3": dy3}
    al, bl = leaf(a), leaf(b)
    y = torch.cat([al, bl], dim=1)
    y.backward(dy)
    out.update({"y": y, "da": al.grad, "db": bl.grad})
    pl, ql, rl = leaf(p), leaf(q), leaf(r)
    y3 = torch.cat([pl, ql, rl], dim=2)
    y3.backward(dy3)
    out.update({"y3": y3, "dp": pl.grad, "dq": ql.grad, "dr": rl.grad})
    save("concat.safetensors", out)

    torch.manual_seed(122)
    x, dy = torch.randn(3, 12), torch.randn(3, 2, 3, 2)
    xl = leaf(x)
    y = xl.reshape(3, 2, -1, 2)
    y.backward(dy)
    save("reshape.safetensors", {"x": x, "y": y, "dy": dy, "dx": xl.grad})


def loss_file(name, pred, target, variants):
    """variants: prefix -> f(pred, target, reduction); writes loss_/dpred_<prefix><red>."""
    out = {"pred": pred, "target": target}
    for prefix, fn in variants.items():
        for red in ("mean", "sum"):
            pl = leaf(pred)
            loss = fn(pl, target, red)
            loss.backward()
            out[f"loss_{prefix}{red}"] = loss
            out[f"dpred_{prefix}{red}"] = pl.grad
    save(name + ".safetensors", out)


def gen_losses():
    torch.manual_seed(130)
    logits = torch.randn(6, 5) * 2
    logits[2] = torch.tensor([100.0, -100.0, 0.0, 100.5, -3.0])
    logp = F.log_softmax(logits, dim=1)  # row 2, class 1: about -200.7
    labels = torch.tensor([0, 2, 1, 4, 2, 3])
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.8])
    loss_file("nll", logp, labels.to(torch.float32), {
        "": lambda p, t, red: F.nll_loss(p, t.long(), reduction=red),
        "w_": lambda p, t, red: F.nll_loss(p, t.long(), weight=weight, ignore_index=2,
                                           reduction=red),
    })

    torch.manual_seed(131)
    pred, target = torch.randn(4, 3) * 1.5, torch.randn(4, 3)
    target[1, 1] = pred[1, 1]  # a tie: the gradient there is sign(0) = 0
    loss_file("l1", pred, target, {"": lambda p, t, red: F.l1_loss(p, t, reduction=red)})

    torch.manual_seed(132)
    pred, target = torch.randn(4, 3) * 1.5, torch.randn(4, 3)
    target[1, 1] = pred[1, 1]
    loss_file("smooth_l1", pred, target, {
        "": lambda p, t, red: F.smooth_l1_loss(p, t, reduction=red),
        "b05_": lambda p, t, red: F.smooth_l1_loss(p, t, reduction=red, beta=0.5),
        "b0_": lambda p, t, red: F.smooth_l1_loss(p, t, reduction=red, beta=0.0),
    })

    torch.manual_seed(133)
    pred, target = torch.randn(4, 3) * 1.5, torch.randn(4, 3)
    loss_file("huber", pred, target, {
        "": lambda p, t, red: F.huber_loss(p, t, reduction=red),
        "d05_": lambda p, t, red: F.huber_loss(p, t, reduction=red, delta=0.5),
    })

    torch.manual_seed(134)
    logits, target = torch.randn(4, 3) * 2, torch.rand(4, 3)
    logits[3] = torch.tensor([60.0, -100.0, 100.0])  # the naive log(sigmoid) overflows
    target[3] = torch.tensor([1.0, 1.0, 0.0])  # losses 0, 100, 100
    target[0, 0], target[0, 1] = 0.0, 1.0
    pw3, pw1 = torch.tensor([2.0, 0.5, 3.0]), torch.tensor([2.5])
    loss_file("bce_with_logits", logits, target, {
        "": lambda p, t, red: F.binary_cross_entropy_with_logits(p, t, reduction=red),
        "pw_": lambda p, t, red: F.binary_cross_entropy_with_logits(p, t, reduction=red,
                                                                    pos_weight=pw3),
        "pw1_": lambda p, t, red: F.binary_cross_entropy_with_logits(p, t, reduction=red,
                                                                     pos_weight=pw1),
    })


if __name__ == "__main__":
    assert torch.__version__.startswith("1.13"), torch.__version__
    torch.set_default_dtype(torch.float32)
    gen_activations()
    gen_softmaxes()
    gen_graph_ops()
    gen_losses()
