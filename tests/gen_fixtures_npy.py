#!/usr/bin/python3
"""gen_fixtures_npy.py - .npy/.npz files written by NumPy itself for tkrun's reader
(runtime/data/npy.c). Run with Debian's interpreter:

    /usr/bin/python3 tests/gen_fixtures_npy.py

It rewrites tests/fixtures/npy/. Values follow formulas the C test (tests/unit/test_npy.c)
recomputes, with i the flat C-order index (shape (2, 3, 4) unless said):

  f4, f8             i * 0.25 - 3                 (float32, float64)
  i1, i2, i4, i8     (i - 12) * m, m = 1, 1000, 100000, 10**12
  u1, u2, u4, u8     i * m, m = 10, 2000, 100000, 10**12
  b1                 i % 3 == 0                   (bool)
  v2                 f4 written with format version 2.0 (4-byte header length)
  scalar             float32 2.5, shape ()
  fortran            f4 as np.asfortranarray (fortran_order True: must be refused)
  big                f4 as '>f4' (big-endian: must be refused)
  arrays.npz         np.savez (stored): x = u1 of shape (6, 1, 2, 2), i*7 % 256;
                     y = int64 class ids i % 3 (6,); t = float32 targets (6, 2), i * 0.5
  arrays_z.npz       the same through np.savez_compressed (deflated members)
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "npy")


def main():
    os.makedirs(OUT, exist_ok=True)
    i = np.arange(24).reshape(2, 3, 4)
    arrays = {
        "f4": (i * 0.25 - 3).astype(np.float32), "f8": (i * 0.25 - 3).astype(np.float64),
        "i1": (i - 12).astype(np.int8), "i2": ((i - 12) * 1000).astype(np.int16),
        "i4": ((i - 12) * 100000).astype(np.int32), "i8": ((i - 12) * 10**12).astype(np.int64),
        "u1": (i * 10).astype(np.uint8), "u2": (i * 2000).astype(np.uint16),
        "u4": (i * 100000).astype(np.uint32), "u8": (i * 10**12).astype(np.uint64),
        "b1": (i % 3 == 0), "scalar": np.float32(2.5),
        "fortran": np.asfortranarray((i * 0.25 - 3).astype(np.float32).reshape(6, 4)),
        "big": (i * 0.25 - 3).astype(">f4"),
    }
    for name, a in arrays.items():
        np.save(os.path.join(OUT, name + ".npy"), a)
    with open(os.path.join(OUT, "v2.npy"), "wb") as f:
        np.lib.format.write_array(f, arrays["f4"], version=(2, 0))
    k = np.arange(6)
    members = {"x": ((np.arange(24) * 7) % 256).astype(np.uint8).reshape(6, 1, 2, 2),
               "y": (k % 3).astype(np.int64),
               "t": (np.arange(12) * 0.5).astype(np.float32).reshape(6, 2)}
    np.savez(os.path.join(OUT, "arrays.npz"), **members)
    np.savez_compressed(os.path.join(OUT, "arrays_z.npz"), **members)
    print(f"{len(arrays) + 3} files in {OUT} (numpy {np.__version__})")


if __name__ == "__main__":
    main()
