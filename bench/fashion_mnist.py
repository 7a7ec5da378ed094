#!/usr/bin/python3
"""fashion_mnist.py - the PyTorch side of bench/speed.sh: the model, data, batch and split of
the generated tkrun scripts (bench/speed.sh), timed per epoch (the train pass only, as tkrun's
train.log reports it) and for one eval pass over the 10k test images.

    /usr/bin/python3 bench/fashion_mnist.py mlp|cnn EPOCHS TORCH_THREADS [sgd|adam] [BATCH]

Reads Debian's dataset-fashion-mnist IDX files; prints one "epoch N seconds S" line per epoch,
then "eval seconds S" and the test accuracy.
"""
import gzip
import sys
import time

import numpy as np
import torch
from torch import nn

DIR = "/usr/share/datasets/fashion-mnist/"


def idx(name):
    raw = gzip.open(DIR + name).read()
    ndim = raw[3]
    dims = np.frombuffer(raw[4:4 + 4 * ndim], dtype=">u4")
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def tensors(prefix):
    x = idx(prefix + "-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    x = (x - 0.2860) / 0.3530
    y = idx(prefix + "-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def main():
    name, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    optim = sys.argv[4] if len(sys.argv) > 4 else "adam"
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 64
    torch.set_num_threads(threads)
    torch.manual_seed(6666)
    x, y = tensors("train")
    xt, yt = tensors("t10k")
    perm = torch.randperm(len(x))
    valid, train = perm[:6000], perm[6000:]
    if name == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                              nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(128, 10))
    if optim == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[train], y[train]),
                                         batch_size=batch, shuffle=True)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        print(f"epoch {epoch} seconds {seconds:.3f}", flush=True)
    model.eval()
    start = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(xt), batch):
            correct += (model(xt[i:i + batch]).argmax(1) == yt[i:i + batch]).sum().item()
    print(f"eval seconds {time.perf_counter() - start:.3f}")
    print(f"test accuracy {correct / len(xt):.4f}")


if __name__ == "__main__":
    main()
