#!/usr/bin/python3
"""gen_fixtures_augment.py - torchvision 0.14's augmentation ops with their random offsets
fixed, for tkrun's augment.c (tests/unit/test_augment.c). Run with Debian's interpreter:

    /usr/bin/python3 tests/gen_fixtures_augment.py

It rewrites tests/fixtures/augment.safetensors: `x` (3, 6, 7) of whole numbers 0..255 (a
uint8 image as floats), and what torchvision's transforms compute from it once their draws
are made:

  crop.<l>_<t>_<r>_<b>.<fill>.<top>_<left>  RandomCrop((6, 7), padding=[l, t, r, b],
                                  fill): F.crop(F.pad(x, [l, t, r, b], fill), top, left, 6, 7)
  hflip, vflip                    RandomHorizontalFlip / RandomVerticalFlip when they flip
  shift.<tx>_<ty>.<fill>          RandomAffine(degrees=0, translate=..., fill) having drawn
                                  (tx, ty): F.affine(x, 0, [tx, ty], 1, [0, 0], NEAREST, fill)
  normalize                       Normalize(mean, std)(x / 255) per channel, mean
                                  (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
Negative numbers in names are written m<n>.
"""
import os
import sys

import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import save  # noqa: E402

CROPS = [((2, 2, 2, 2), 0, [(0, 0), (4, 4), (1, 3), (3, 0)]),
         ((1, 3, 1, 3), 7, [(0, 2), (6, 1)]),
         ((1, 2, 3, 0), 0, [(2, 4), (0, 1)])]
SHIFTS = [(1, 0, 0), (-2, 1, 0), (0, -3, 9), (3, 2, 0), (-1, -1, 255)]


def name(v):
    return str(v).replace("-", "m")


def main():
    g = torch.Generator().manual_seed(14)
    x = torch.randint(0, 256, (3, 6, 7), generator=g).to(torch.float32)
    out = {"x": x, "hflip": F.hflip(x), "vflip": F.vflip(x)}
    for pad, fill, offsets in CROPS:
        padded = F.pad(x, list(pad), fill=fill)
        for top, left in offsets:
            key = "crop.%s.%d.%d_%d" % ("_".join(map(str, pad)), fill, top, left)
            out[key] = F.crop(padded, top, left, 6, 7)
    for tx, ty, fill in SHIFTS:
        out["shift.%s_%s.%d" % (name(tx), name(ty), fill)] = F.affine(
            x, angle=0.0, translate=[tx, ty], scale=1.0, shear=[0.0, 0.0],
            interpolation=InterpolationMode.NEAREST, fill=[float(fill)])
    out["normalize"] = F.normalize(x / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    save("augment.safetensors", out, {"torchvision": torchvision.__version__})


if __name__ == "__main__":
    main()
