#!/usr/bin/python3
"""gen_fixtures_images.py - reference pixels from torchvision 0.14 / Pillow 9.4 for tkrun's
image decoder (runtime/data/image.c).

Run once with Debian's interpreter (it has python3-torchvision and python3-pil):

    /usr/bin/python3 tests/gen_fixtures_images.py

It writes small PNG and JPEG files under tests/fixtures/images/ (seeded noise plus gradients,
so resizing has structure to get wrong) and tests/fixtures/images.safetensors, which holds for
each file <stem> and each case <c>_<h>x<w> the tensor `<stem>.<c>_<h>x<w>` (c, h, w) float32:
torchvision's own pipeline on that file,

    PILToTensor()(Resize((h, w))(Image.open(path).convert("L" if c == 1 else "RGB")))

with Resize's default (bilinear, antialiased on PIL images), h x w = 0x0 meaning no resize.
The C test decodes each file with tk_image_read and wants the same bytes exactly.
"""
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import OUT, save  # noqa: E402

IMAGES = os.path.join(OUT, "images")
CASES = [(1, 0, 0), (3, 0, 0), (1, 7, 5), (3, 7, 5), (3, 31, 23), (1, 28, 28), (3, 4, 40)]


def pattern(rng, h, w, c):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                     ((x + y) * 13) % 256], axis=-1)[..., :c]
    noise = rng.integers(-40, 41, size=(h, w, c))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_images():
    os.makedirs(IMAGES, exist_ok=True)
    rng = np.random.default_rng(11)
    files = {}
    im = Image.fromarray(pattern(rng, 13, 17, 3), "RGB")
    im.save(os.path.join(IMAGES, "rgb.png")); files["rgb"] = "rgb.png"
    Image.fromarray(pattern(rng, 11, 9, 1)[..., 0], "L").save(os.path.join(IMAGES, "grey.png"))
    files["grey"] = "grey.png"
    rgba = np.concatenate([pattern(rng, 10, 12, 3), rng.integers(0, 256, (10, 12, 1), dtype=np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(IMAGES, "rgba.png")); files["rgba"] = "rgba.png"
    Image.fromarray(pattern(rng, 9, 14, 3), "RGB").quantize(colors=16).save(
        os.path.join(IMAGES, "palette.png")); files["palette"] = "palette.png"
    Image.fromarray(pattern(rng, 12, 8, 1)[..., 0] > 128).save(os.path.join(IMAGES, "bits.png"))
    files["bits"] = "bits.png"
    Image.fromarray(pattern(rng, 20, 16, 3), "RGB").save(
        os.path.join(IMAGES, "rgb.jpg"), quality=90); files["rgb_jpg"] = "rgb.jpg"
    Image.fromarray(pattern(rng, 15, 18, 1)[..., 0], "L").save(
        os.path.join(IMAGES, "grey.jpg"), quality=85); files["grey_jpg"] = "grey.jpg"
    Image.fromarray(pattern(rng, 24, 21, 3), "RGB").save(
        os.path.join(IMAGES, "progressive.jpg"), quality=80, progressive=True, subsampling=2)
    files["progressive"] = "progressive.jpg"
    # A JPEG under a .png name: the decoder goes by content.
    Image.fromarray(pattern(rng, 9, 10, 3), "RGB").save(
        os.path.join(IMAGES, "jpeg_named.png"), format="JPEG", quality=95)
    files["jpeg_named"] = "jpeg_named.png"
    return files


def main():
    tensors = {}
    for stem, name in write_images().items():
        for c, h, w in CASES:
            im = Image.open(os.path.join(IMAGES, name)).convert("L" if c == 1 else "RGB")
            if h:
                im = transforms.Resize((h, w))(im)
            t = transforms.PILToTensor()(im).to(torch.float32)
            tensors[f"{stem}.{c}_{h}x{w}"] = t
    save("images.safetensors", tensors, {"torchvision": __import__("torchvision").__version__,
                                         "pillow": Image.__version__})


if __name__ == "__main__":
    main()
