#!/usr/bin/python3
"""gen_fixtures.py - reference numbers from PyTorch 1.13 for tkrun's C tests.

Run once with Debian's interpreter (it has python3-torch and python3-numpy):

    /usr/bin/python3 tests/gen_fixtures.py

It rewrites tests/fixtures/*.safetensors; the files are committed, so the test suite needs no
PyTorch. Everything is float32 and computed by PyTorch itself (that is the point: the C code
must agree with what PyTorch computes in float32). Each file seeds its own generator, so
adding a case does not change the others. The `safetensors` package is not needed: a small
writer below produces the same layout (header sorted by name, padded with spaces to a multiple
of 8). Unlike the reference writer it lets json escape non-ASCII as \\uXXXX, which the C
parser must decode.

Files and tensor names (shapes in parentheses; () is a scalar):

  linear.safetensors        x (4,5), weight (3,5), bias (3), y = F.linear(x, weight, bias) (4,3),
                            dy (4,3), and from y.backward(dy): dx, dweight, dbias;
                            y_relu = relu(F.linear(...)) and, with the same dy, dx_relu,
                            dweight_relu, dbias_relu
  relu.safetensors          x (4,6) (no element within 0.05 of zero), y, dy, dx
  cross_entropy.safetensors logits (6,5) (row 2 holds +-100: naive exp overflows float32),
                            labels (6) class ids as float32, loss () = F.cross_entropy mean,
                            dlogits (6,5); with label_smoothing=0.1: loss_ls (), dlogits_ls
  mse.safetensors           pred (4,3), target (4,3), loss () = F.mse_loss mean, dpred
  dropout_eval.safetensors  x (4,6), y = nn.Dropout(0.3).eval()(x), dy, dx
  sgd_plain, sgd_momentum, sgd_nesterov, adam, adam_wd (.safetensors):
                            parameters init.0 (5,4) and init.1 (4); for step k = 1..10 the given
                            gradients grad.<k>.<i> and the parameters after the step param.<k>.<i>,
                            and the optimizer state after the step slot.<k>.<i>.<name> with
                            <name> momentum_buffer (sgd with momentum) or exp_avg, exp_avg_sq
                            (adam). __metadata__ holds the hyper-parameters as strings
                            (optimizer, lr, momentum, dampening, weight_decay, nesterov, beta1,
                            beta2, eps, amsgrad, steps, foreach, torch).
  tiny_torch.safetensors    the reader's "written by Python" case: f32 (2,3), f64 (4), i64 (2,2),
                            i32 (2), u8 (3), bool (3), f16 (6), bf16 (4), scalar () in their own
                            dtypes, and __metadata__ {format, written_by, note}.

The optimizers run torch.optim with foreach=None, which in torch 1.13 means foreach=False:
the single-tensor path (_single_tensor_sgd / _single_tensor_adam), one parameter at a time.
"""
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

NP_DTYPES = {
    torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8"), torch.float16: ("F16", "<f2"),
    torch.int64: ("I64", "<i8"), torch.int32: ("I32", "<i4"), torch.uint8: ("U8", "u1"),
    torch.bool: ("BOOL", "u1"),
}


def encode(t):
    """(dtype name, shape, little-endian bytes) of a tensor."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return "BF16", list(t.shape), t.view(torch.int16).numpy().astype("<i2").tobytes()
    name, np_dtype = NP_DTYPES[t.dtype]
    return name, list(t.shape), t.numpy().astype(np_dtype).tobytes()


def save(name, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for key in sorted(tensors):
        dtype, shape, raw = encode(tensors[key])
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("ascii")
    text += b" " * (-len(text) % 8)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    print(f"{name}: {len(tensors)} tensors")


def leaf(t):
    return t.clone().requires_grad_(True)


def gen_linear():
    torch.manual_seed(1)
    x, w, b = torch.randn(4, 5), torch.randn(3, 5), torch.randn(3)
    dy = torch.randn(4, 3)
    out = {"x": x, "weight": w, "bias": b, "dy": dy}
    for suffix, act in (("", lambda v: v), ("_relu", F.relu)):
        xl, wl, bl = leaf(x), leaf(w), leaf(b)
        y = act(F.linear(xl, wl, bl))
        y.backward(dy)
        out.update({"y" + suffix: y, "dx" + suffix: xl.grad, "dweight" + suffix: wl.grad,
                    "dbias" + suffix: bl.grad})
    # relu's gradient at exactly 0 is a convention; keep every pre-activation away from it.
    assert (F.linear(x, w, b).abs() > 1e-3).all()
    save("linear.safetensors", out)


def gen_relu():
    torch.manual_seed(2)
    x = torch.randn(4, 6)
    x = torch.where(x.abs() < 0.05, torch.full_like(x, 0.5), x)
    dy = torch.randn(4, 6)
    xl = leaf(x)
    y = F.relu(xl)
    y.backward(dy)
    save("relu.safetensors", {"x": x, "y": y, "dy": dy, "dx": xl.grad})


def gen_cross_entropy():
    torch.manual_seed(3)
    logits = torch.randn(6, 5) * 2
    logits[2] = torch.tensor([100.0, -100.0, 0.0, 100.5, -3.0])
    labels = torch.randint(0, 5, (6,))
    labels[2] = 1  # the -100 logit: loss ~ 201, only finite with a stable log-softmax
    out = {"logits": logits, "labels": labels.to(torch.float32)}
    for suffix, ls in (("", 0.0), ("_ls", 0.1)):
        lg = leaf(logits)
        loss = F.cross_entropy(lg, labels, label_smoothing=ls)
        loss.backward()
        out.update({"loss" + suffix: loss, "dlogits" + suffix: lg.grad})
    save("cross_entropy.safetensors", out)


def gen_mse():
    torch.manual_seed(4)
    pred, target = torch.randn(4, 3), torch.randn(4, 3)
    pl = leaf(pred)
    loss = F.mse_loss(pl, target)
    loss.backward()
    save("mse.safetensors", {"pred": pred, "target": target, "loss": loss, "dpred": pl.grad})


def gen_optim(name, cls, hp, meta, slot_names, seed):
    torch.manual_seed(seed)
    params = [torch.randn(5, 4), torch.randn(4)]
    out = {f"init.{i}": p.clone() for i, p in enumerate(params)}
    params = [torch.nn.Parameter(p) for p in params]
    opt = cls(params, **hp)  # foreach=None: the single-tensor path in torch 1.13
    steps = 10
    for k in range(1, steps + 1):
        for i, p in enumerate(params):
            g = torch.randn(p.shape)
            out[f"grad.{k}.{i}"] = g
            p.grad = g.clone()
        opt.step()
        for i, p in enumerate(params):
            out[f"param.{k}.{i}"] = p.detach().clone()
            for s in slot_names:
                out[f"slot.{k}.{i}.{s}"] = opt.state[p][s].clone()
    meta = dict(meta, steps=steps, foreach="None (single-tensor path in torch 1.13)",
                torch=torch.__version__)
    save(name + ".safetensors", out, meta)


def gen_optimizers():
    sgd = {"optimizer": "sgd", "momentum": 0, "dampening": 0, "weight_decay": 0,
           "nesterov": "false"}
    cases = [
        ("sgd_plain", dict(lr=0.1), {}, []),
        ("sgd_momentum", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01), {},
         ["momentum_buffer"]),
        ("sgd_nesterov", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001),
         {"nesterov": "true"}, ["momentum_buffer"]),
    ]
    for seed, (name, hp, extra, slots) in enumerate(cases, start=10):
        meta = dict(sgd, **{k: v for k, v in hp.items() if k != "nesterov"}, **extra)
        gen_optim(name, torch.optim.SGD, hp, meta, slots, seed)
    adam = {"optimizer": "adam", "lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "amsgrad": "false"}
    for seed, (name, wd) in enumerate((("adam", 0.0), ("adam_wd", 0.1)), start=20):
        hp = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
        gen_optim(name, torch.optim.Adam, hp, dict(adam, weight_decay=wd),
                  ["exp_avg", "exp_avg_sq"], seed)


def gen_tiny():
    t = {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1,
        "f64": torch.tensor([1.5, -2.25, 0.1, 1e300], dtype=torch.float64),
        "i64": torch.tensor([[-3, 0], [7, 2 ** 40]], dtype=torch.int64),
        "i32": torch.tensor([-2 ** 31, 5], dtype=torch.int32),
        "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "f16": torch.tensor([1.0, -2.5, 65504.0, 3 * 2.0 ** -24, -0.0, -float("inf")],
                            dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.0, 0.1, 3.3895313892515355e38], dtype=torch.bfloat16),
        "scalar": torch.tensor(3.25),
    }
    save("tiny_torch.safetensors", t, {"format": "pt", "written_by": "tests/gen_fixtures.py",
                                       "note": "quote \" and caf\u00e9 \U0001d11e"})


def gen_dropout():
    """nn.Dropout(0.3) in eval mode: the identity, forward and backward."""
    torch.manual_seed(6)
    x, dy = leaf(torch.randn(4, 6)), torch.randn(4, 6)
    layer = torch.nn.Dropout(0.3).eval()
    y = layer(x)
    y.backward(dy)
    save("dropout_eval.safetensors", {"x": x, "y": y, "dy": dy, "dx": x.grad})


def gen_state_dicts():
    """Names and shapes of the PyTorch modules equivalent to the example scripts: what a
    tkrun checkpoint must hold for load_state_dict to take it unchanged."""
    from torch import nn
    models = {
        "breast_cancer": nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Dropout(0.2),
                                       nn.Linear(32, 2)),
        "fashion_mlp": nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                                     nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)),
    }
    for name, model in models.items():
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        with open(os.path.join(OUT, f"state_dict_{name}.json"), "w") as f:
            json.dump(shapes, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"state_dict_{name}.json: {len(shapes)} tensors")


if __name__ == "__main__":
    assert torch.__version__.startswith("1.13"), torch.__version__
    torch.set_default_dtype(torch.float32)
    os.makedirs(OUT, exist_ok=True)
    gen_tiny()
    gen_linear()
    gen_relu()
    gen_cross_entropy()
    gen_mse()
    gen_optimizers()
    gen_state_dicts()
    gen_dropout()
