#!/usr/bin/python3
"""onnx_check.py - validates a file of `tkrun export` with Debian's python3-onnx, for
tests/cli/export.sh:

    onnx_check.py OUTPUT_DIMS MODEL.onnx WEIGHTS.safetensors [MODEL WEIGHTS]...

OUTPUT_DIMS is the output's shape after the batch, comma-separated ("10"). For each model:

- onnx.checker.check_model(full_check=True) and strict shape inference pass;
- opset 13 (default domain only), IR version 7;
- one input "input" and one output "output", each with the dynamic first axis "batch";
- the output's shape that shape inference derives, with the declared one removed first, is
  (batch, OUTPUT_DIMS...);
- the initializers not made by the exporter (theirs start with '/') are exactly the weights
  file's tensors, num_batches_tracked aside (inference does not read it), bit for bit.
Prints "MODEL: ok" or "MODEL: <what failed>" per model; exits 1 if any failed.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

import safetensors_reader


def dims_of(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def problems_of(path, weights, output_dims):
    problems = []
    model = onnx.load(path)
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # the checker's and inference's own errors, in their words
        return ["%s: %s" % (type(e).__name__, e)]

    opsets = [(o.domain, o.version) for o in model.opset_import]
    if opsets != [("", 13)]:
        problems.append("opset_import %s, expected [('', 13)]" % opsets)
    if model.ir_version != 7:
        problems.append("ir_version %d, expected 7" % model.ir_version)
    g = model.graph
    if [i.name for i in g.input] != ["input"] or [o.name for o in g.output] != ["output"]:
        problems.append("inputs %s, outputs %s" % ([i.name for i in g.input],
                                                   [o.name for o in g.output]))
    elif dims_of(g.input[0])[:1] != ["batch"]:
        problems.append("input dims %s lack the 'batch' axis" % dims_of(g.input[0]))

    want = ["batch"] + [int(d) for d in output_dims]
    g.output[0].type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    got = dims_of(inferred.graph.output[0])
    if got != want:
        problems.append("inferred output shape %s, expected %s" % (got, want))

    tensors, _ = safetensors_reader.read(weights)
    expected = {k: v for k, (_, v) in tensors.items() if not k.endswith("num_batches_tracked")}
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer if not t.name.startswith("/")}
    if sorted(inits) != sorted(expected):
        problems.append("initializers %s, weights file %s" % (sorted(inits), sorted(expected)))
    else:
        for name, arr in expected.items():
            if inits[name].shape != arr.shape or not np.array_equal(inits[name], arr):
                problems.append("initializer %s differs from the weights file" % name)

    return problems


def main(argv):
    output_dims, pairs = argv[0].split(","), argv[1:]
    failed = False
    for path, weights in zip(pairs[0::2], pairs[1::2]):
        problems = problems_of(path, weights, output_dims)
        print("%s: %s" % (path, "; ".join(problems) if problems else "ok"))
        failed = failed or bool(problems)
    return 1 if failed or not pairs or len(pairs) % 2 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
