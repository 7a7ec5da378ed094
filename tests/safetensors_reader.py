#!/usr/bin/python3
"""safetensors_reader.py - an independent safetensors reader/writer (Python 3 + numpy only,
written apart from runtime/safetensors.c) that the CLI tests use to check tkrun's files the way
PyTorch users would read them.

    safetensors_reader.py names FILE            "name dtype shape" per tensor, sorted
    safetensors_reader.py same FILE1 FILE2      exit 0 iff same names and bit-identical data
    safetensors_reader.py close FILE1 FILE2 TOL exit 0 iff same names, data within rel. TOL
    safetensors_reader.py copy IN OUT           rewrite IN with this module's own writer
    safetensors_reader.py meta FILE KEY         one __metadata__ value
    safetensors_reader.py check FILE JSON       names and shapes equal a state_dict fixture
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def read(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(raw[base + begin:base + end], dtype=DTYPES[info["dtype"]])
        tensors[name] = (info["dtype"], arr.reshape(info["shape"]))
    return tensors, meta


def write(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta} if meta else {}, [], 0
    for name in sorted(tensors):
        dtype, arr = tensors[name]
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "names":
        tensors, _ = read(args[0])
        for name in sorted(tensors):
            print(name, tensors[name][0], tuple(tensors[name][1].shape))
    elif cmd == "same":
        a, _ = read(args[0])
        b, _ = read(args[1])
        if sorted(a) != sorted(b):
            print("names differ:", sorted(set(a) ^ set(b)))
            sys.exit(1)
        for name in a:
            if a[name][1].shape != b[name][1].shape or a[name][1].tobytes() != b[name][1].tobytes():
                print("tensor differs:", name)
                sys.exit(1)
    elif cmd == "close":
        a, _ = read(args[0])
        b, _ = read(args[1])
        tol = float(args[2])
        if sorted(a) != sorted(b):
            print("names differ:", sorted(set(a) ^ set(b)))
            sys.exit(1)
        for name in a:
            x, y = a[name][1].astype(np.float64), b[name][1].astype(np.float64)
            err = np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-3)) if x.size else 0.0
            if x.shape != y.shape or err > tol:
                print(f"tensor {name} differs: relative error {err:.3g}")
                sys.exit(1)
    elif cmd == "copy":
        tensors, meta = read(args[0])
        write(args[1], tensors, {"format": "pt"} if meta.get("format") == "pt" else {})
    elif cmd == "meta":
        _, meta = read(args[0])
        print(meta.get(args[1], ""))
    elif cmd == "check":
        tensors, meta = read(args[0])
        want = json.load(open(args[1]))
        got = {name: list(t[1].shape) for name, t in tensors.items()}
        if got != want:
            print("state_dict mismatch:\n got", got, "\nwant", want)
            sys.exit(1)
        if meta.get("format") != "pt":
            print("format is not pt:", meta)
            sys.exit(1)
        for name, (dtype, arr) in tensors.items():
            want_dtype = "I64" if name.endswith("num_batches_tracked") else "F32"
            if dtype != want_dtype or not np.all(np.isfinite(arr)):
                print("bad tensor", name, dtype)
                sys.exit(1)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
