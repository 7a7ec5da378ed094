#!/usr/bin/python3
"""gen_fixtures_repl.py - what PyTorch 1.13 prints for tensors (str(tensor)), the reference
for the REPL's tensor preview (tests/cli/repl.sh). Each case is a Lua expression that builds
the same values as the Python one (same doubles, rounded to float32 alike) and the text
torch prints. Run with Debian's python3-torch:

    /usr/bin/python3 tests/gen_fixtures_repl.py > tests/fixtures/repl_print.txt
"""
import math

import torch


def lua_list(v):
    if isinstance(v, list):
        return "{" + ", ".join(lua_list(x) for x in v) + "}"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "0/0"
    if math.isinf(v):
        return "math.huge" if v > 0 else "-math.huge"
    return repr(v)


def literal(values, dtype=None):
    lua = "tensor(%s%s)" % (lua_list(values), ', "int64"' if dtype == torch.int64 else "")
    return lua, torch.tensor(values, dtype=dtype or torch.float32)


CASES = [
    literal([[0.1234, -5.6], [1e-5, 3.0]]),                       # scientific
    literal([1.0, 2.0, 3.0]),                                      # integral floats
    literal([[1.5, -2.25, 0.0], [3.125, 100.0, -0.5]]),            # fixed, 4 decimals
    literal([1, -20, 300], torch.int64),
    literal([0.0, 0.0, 0.0]),
    literal([1e9, 2.0, -3.0]),                                     # integral, scientific
    literal([1.5, float("nan"), float("inf"), float("-inf")]),
    literal(3.5),
    literal([[[i * 12 + j * 4 + k - 10.5 for k in range(4)] for j in range(3)]
             for i in range(2)]),                                  # 3-D
    literal([k * 1.37 - 20.0 for k in range(30)]),                 # wraps at 80 columns
]

# Elided (more than 1000 elements): the same values from a Lua loop.
grid = "(function() local t = {} for i = 1, 40 do t[i] = {} for j = 1, 50 do " \
       "t[i][j] = (i * 50 + j) / 7 end end return tensor(t) end)()"
CASES.append((grid, torch.tensor([[(i * 50 + j) / 7 for j in range(1, 51)]
                                  for i in range(1, 41)])))
line = "(function() local t = {} for k = 1, 2000 do t[k] = k / 3 end return tensor(t) end)()"
CASES.append((line, torch.tensor([k / 3 for k in range(1, 2001)])))

for lua, t in CASES:
    print("### " + lua)
    print(str(t))
