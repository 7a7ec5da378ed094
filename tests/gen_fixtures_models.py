#!/usr/bin/python3
"""gen_fixtures_models.py - PyTorch 1.13 twins of examples/fashion_mnist/cnn.lua and
resnet.lua: their weights as safetensors (state_dict names, which tkrun must reproduce) and
one input batch with the logits PyTorch computes in eval mode.

    /usr/bin/python3 tests/gen_fixtures_models.py

Writes tests/fixtures/model_<name>_weights.safetensors (the state_dict) and
model_<name>_io.safetensors (input (8,1,28,28), logits (8,10)). Batch-norm running statistics
are set to non-trivial values so eval mode is really tested.
"""
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import save  # noqa: E402


class Residual(nn.Sequential):
    """nn.residual{...}: x + body(x), its layers numbered like a Sequential."""

    def forward(self, x):
        return x + super().forward(x)


def conv_bn(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]


def block(c):
    return Residual(*conv_bn(c, c), nn.ReLU(), *conv_bn(c, c))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10))


def resnet():
    return nn.Sequential(
        *conv_bn(1, 32), nn.ReLU(),
        block(32), nn.ReLU(),
        nn.MaxPool2d(2),
        *conv_bn(32, 64), nn.ReLU(),
        block(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 10))


def main():
    assert torch.__version__.startswith("1.13"), torch.__version__
    for name, make in [("cnn", cnn), ("resnet", resnet)]:
        torch.manual_seed(7)
        model = make()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(17)
        model.eval()
        x = torch.randn(8, 1, 28, 28)
        with torch.no_grad():
            logits = model(x)
        save(f"model_{name}_weights.safetensors", dict(model.state_dict()), {"format": "pt"})
        save(f"model_{name}_io.safetensors", {"input": x, "logits": logits})


if __name__ == "__main__":
    main()
