#!/usr/bin/python3
"""gen_fixtures_spatial.py - PyTorch 1.13 reference numbers for the spatial and normalisation
ops (conv2d, max/avg/adaptive pooling, batch norm 1d/2d, layer norm, dropout2d).

Run once with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/gen_fixtures_spatial.py

It rewrites tests/fixtures/{conv2d,max_pool2d,avg_pool2d,adaptive_avg_pool2d,batch_norm1d,
batch_norm2d,layer_norm,dropout2d}_*.safetensors with the writer of gen_fixtures.py. Every
file seeds its own generator, so rerunning rewrites identical bytes and adding a case leaves
the others alone. Each file holds the input `x`, the parameters under their PyTorch names,
the output `y`, an upstream gradient `dy`, and from y.backward(dy) the gradients `dx` and
`d<param>`; batch norm files add the buffers before (`running_mean`, `running_var`,
`num_batches_tracked`) and after the step (`*_after`). `__metadata__` records the op's
attributes as the C test passes them. tests/fixtures/README.md documents every file.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import leaf, save  # noqa: E402


def grads(name, x, params, fn, meta, extra=None):
    """Run y = fn(x, params), backward a random dy, save everything under `name`."""
    xl = leaf(x)
    pl = {k: leaf(v) for k, v in params.items()}
    y = fn(xl, pl)
    dy = torch.randn(y.shape)
    y.backward(dy)
    out = {"x": x, "y": y, "dy": dy, "dx": xl.grad}
    for k, v in params.items():
        out[k] = v
        out["d" + k] = pl[k].grad
    out.update(extra or {})
    save(name, out, dict(meta, torch=torch.__version__))


# ---------------------------------------------------------------- conv2d

def gen_conv2d():
    cases = [
        # name, input shape, out, attributes of F.conv2d, bias
        ("basic", (2, 3, 6, 5), 4, dict(padding=1), True),
        ("stride2_nobias", (2, 3, 7, 6), 4, dict(kernel_size=(3, 2), stride=2, padding=(1, 0)),
         False),
        ("groups_dilation", (2, 4, 7, 7), 6, dict(dilation=2, groups=2, padding=2), True),
        ("same", (2, 2, 5, 6), 3, dict(kernel_size=(4, 3), dilation=(1, 2), padding="same"),
         True),
        ("depthwise", (3, 3, 6, 6), 6, dict(groups=3, stride=(2, 1), padding=(0, 1)), True),
        # Planes large enough that the batch runs as several chunks (3, then 2 samples):
        # their shares of the weight and bias gradients are summed.
        ("chunks", (5, 16, 16, 16), 2, dict(padding=1), True),
    ]
    for seed, (name, shape, out, attrs, bias) in enumerate(cases, start=100):
        torch.manual_seed(seed)
        k = attrs.pop("kernel_size", (3, 3))
        groups = attrs.get("groups", 1)
        x = torch.randn(shape)
        params = {"weight": torch.randn(out, shape[1] // groups, *k) * 0.5}
        if bias:
            params["bias"] = torch.randn(out)

        def fn(xl, p, attrs=attrs):
            return F.conv2d(xl, p["weight"], p.get("bias"), **attrs)

        meta = dict(attrs, out_channels=out, kernel_size=k, bias=int(bias))
        grads(f"conv2d_{name}.safetensors", x, params, fn, meta)


# ---------------------------------------------------------------- pooling

def gen_pools():
    cases = [
        ("max_pool2d", "basic", (2, 3, 6, 6), dict(kernel_size=2)),
        ("max_pool2d", "ceil_pad", (2, 2, 7, 6),
         dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        # Small integers: many ties, where PyTorch takes the first maximum of the window.
        ("max_pool2d", "ties", (2, 2, 6, 5),
         dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True)),
        ("avg_pool2d", "basic", (2, 3, 6, 6), dict(kernel_size=2)),
        ("avg_pool2d", "ceil_pad", (2, 2, 7, 6),
         dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        ("avg_pool2d", "exclude_pad", (2, 2, 7, 6),
         dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
        ("adaptive_avg_pool2d", "uneven", (2, 3, 7, 5), dict(output_size=(3, 2))),
        ("adaptive_avg_pool2d", "upsample", (2, 2, 5, 3), dict(output_size=(4, 5))),
        ("adaptive_avg_pool2d", "global", (2, 3, 6, 5), dict(output_size=1)),
    ]
    for seed, (op, name, shape, attrs) in enumerate(cases, start=200):
        torch.manual_seed(seed)
        x = torch.randint(-2, 3, shape).float() if name == "ties" else torch.randn(shape)
        fn = getattr(F, op)
        grads(f"{op}_{name}.safetensors", x, {}, lambda xl, p, fn=fn, a=attrs: fn(xl, **a),
              attrs)


# ---------------------------------------------------------------- normalisation

def gen_batch_norm():
    cases = [
        # op, name, input shape, train, attributes
        ("batch_norm1d", "train", (6, 4), True, dict(momentum=0.1)),
        ("batch_norm1d", "train_3d", (4, 3, 5), True, dict(momentum=0.3, eps=1e-3)),
        ("batch_norm1d", "eval", (5, 4), False, dict()),
        ("batch_norm2d", "train", (4, 3, 5, 5), True, dict(momentum=0.1)),
        ("batch_norm2d", "train_noaffine", (3, 2, 4, 3), True, dict(affine=False)),
        ("batch_norm2d", "eval", (3, 3, 4, 4), False, dict(eps=1e-3)),
    ]
    cls = {"batch_norm1d": torch.nn.BatchNorm1d, "batch_norm2d": torch.nn.BatchNorm2d}
    for seed, (op, name, shape, train, attrs) in enumerate(cases, start=300):
        torch.manual_seed(seed)
        c = shape[1]
        x = torch.randn(shape) * 2 + 0.5
        m = cls[op](c, **attrs)
        with torch.no_grad():
            if m.affine:
                m.weight.copy_(torch.randn(c))
                m.bias.copy_(torch.randn(c))
            m.running_mean.copy_(torch.randn(c))
            m.running_var.copy_(torch.rand(c) + 0.5)
            m.num_batches_tracked.fill_(5)
        before = {k: v.clone() for k, v in m.named_buffers()}
        m.train(train)
        xl = leaf(x)
        y = m(xl)
        dy = torch.randn(y.shape)
        y.backward(dy)
        out = {"x": x, "y": y, "dy": dy, "dx": xl.grad}
        for k, p in m.named_parameters():
            out[k] = p.detach().clone()
            out["d" + k] = p.grad
        out.update(before)
        out.update({k + "_after": v.clone() for k, v in m.named_buffers()})
        meta = dict(attrs, num_features=c, training=int(train), torch=torch.__version__)
        save(f"{op}_{name}.safetensors", out, meta)


def gen_layer_norm():
    cases = [
        ("last", (3, 4, 5), dict(normalized_shape=(5,)), True),
        ("two_dims", (3, 4, 5), dict(normalized_shape=(4, 5), eps=1e-3), True),
        ("noaffine", (4, 6), dict(normalized_shape=(6,)), False),
    ]
    for seed, (name, shape, attrs, affine) in enumerate(cases, start=400):
        torch.manual_seed(seed)
        x = torch.randn(shape) * 3 - 1
        ns = attrs["normalized_shape"]
        params = {"weight": torch.randn(ns), "bias": torch.randn(ns)} if affine else {}

        def fn(xl, p, attrs=attrs):
            return F.layer_norm(xl, attrs["normalized_shape"], p.get("weight"), p.get("bias"),
                                attrs.get("eps", 1e-5))

        grads(f"layer_norm_{name}.safetensors", x, params, fn,
              dict(attrs, elementwise_affine=int(affine)))


def gen_dropout2d():
    torch.manual_seed(500)
    m = torch.nn.Dropout2d(p=0.4).eval()
    grads("dropout2d_eval.safetensors", torch.randn(2, 3, 4, 4), {},
          lambda xl, p: m(xl), dict(p=0.4, training=0))


if __name__ == "__main__":
    assert torch.__version__.startswith("1.13"), torch.__version__
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)
    gen_conv2d()
    gen_pools()
    gen_batch_norm()
    gen_layer_norm()
    gen_dropout2d()
