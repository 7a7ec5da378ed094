# tkrun export: four small models (tests/cli/onnx/: an MLP, a CNN with batch norm and both
# poolings, a residual network, and one graph with every other op) train one short epoch on
# a FashionMNIST slice and are exported. Each file passes Debian's python3-onnx checker with
# full shape inference (tests/onnx_check.py), and onnxruntime-node (CPU) on 16 inputs gives
# tkrun's own outputs (tests/lang/onnx_forward.c) within 1e-4 (tests/onnx_run.js). The CNN
# and ResNet examples exported with PyTorch's weights give PyTorch's logits. Then the
# bad inputs: no --weights, no --onnx, a missing weights file, another model's weights, an
# output path in a missing directory, one that cannot be written.
source "$(dirname "$0")/lib.bash"
SCRIPTS="$TK_SRC/tests/cli/onnx"
SRC=/usr/share/datasets/fashion-mnist
if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
    echo "dataset-fashion-mnist is not installed"; exit 1
fi

# onnxruntime-node, once per machine, into a cache folder (later runs need no network). Its
# install script would download a GPU build: --ignore-scripts keeps the CPU one it ships.
ORT_VERSION=1.30.0
ORT_DIR="${TK_ORT_DIR:-${XDG_CACHE_HOME:-${HOME:-$TK_TMP}/.cache}/tkrun/onnxruntime-node-$ORT_VERSION}"
if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ]; then
    staging="$ORT_DIR.tmp.$$"
    rm -rf "$staging" && mkdir -p "$staging" &&
        echo '{"name": "tkrun-onnx-test", "private": true}' >"$staging/package.json" &&
        (cd "$staging" && npm install --ignore-scripts --no-audit --no-fund \
            "onnxruntime-node@$ORT_VERSION" >npm.log 2>&1) &&
        rm -rf "$ORT_DIR" && mv "$staging" "$ORT_DIR" || {
        echo "FAIL: cannot install onnxruntime-node@$ORT_VERSION into $ORT_DIR:"
        tail -5 "$staging/npm.log" 2>/dev/null
        exit 1
    }
fi

# The first 512 training records, with the count in the IDX header rewritten.
mkdir -p fashion-mnist
/usr/bin/python3 - "$SRC" <<'PY'
import gzip, struct, sys
for name in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]:
    raw = gzip.open(sys.argv[1] + "/" + name).read()
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    record = 1
    for d in dims[1:]:
        record *= d
    head = raw[:4] + struct.pack(">I", 512) + raw[8:4 + 4 * ndim]
    gzip.open("fashion-mnist/" + name, "wb").write(head + raw[4 + 4 * ndim:][:512 * record])
PY
export TK_DATA="$TK_TMP"

models="mlp cnn resnet ops"
checks=() runs=()
for m in $models; do
    run "$SCRIPTS/$m.lua" --run-dir "run_$m" --quiet --threads 1
    expect_rc 0
    weights="$TK_TMP/run_$m/checkpoints/final.safetensors"
    run export "$SCRIPTS/$m.lua" --weights "$weights" --onnx "$m.onnx" --threads 1
    expect_rc 0
    expect_out "wrote $m.onnx (ONNX opset 13"
    "$TK_ONNX_FORWARD" "$SCRIPTS/$m.lua" "$weights" 16 "$m.json" && ok ||
        bad "$m: onnx_forward failed"
    checks+=("$TK_TMP/$m.onnx" "$weights")
    runs+=("$m.onnx" "$m.json")
done
# The real examples with PyTorch 1.13's weights (tests/gen_fixtures_models.py): onnxruntime
# gives PyTorch's own logits for its inputs.
for m in cnn resnet; do
    weights="$TK_SRC/tests/fixtures/model_${m}_weights.safetensors"
    run export "$TK_SRC/examples/fashion_mnist/$m.lua" --weights "$weights" \
        --onnx "example_$m.onnx" --threads 1
    expect_rc 0
    (cd "$TK_SRC/tests" && /usr/bin/python3 - "$TK_SRC/tests/fixtures/model_${m}_io.safetensors" \
        "$TK_TMP/example_$m.json") <<'PY'
import json, sys
import safetensors_reader
t, _ = safetensors_reader.read(sys.argv[1])
x, y = t["input"][1], t["logits"][1]
json.dump({"input_shape": list(x.shape), "input": x.ravel().tolist(),
           "output_shape": list(y.shape), "output": y.ravel().tolist()}, open(sys.argv[2], "w"))
PY
    checks+=("$TK_TMP/example_$m.onnx" "$weights")
    runs+=("example_$m.onnx" "example_$m.json")
done

# One interpreter each for all the models: most of their time is starting up.
check=$(cd "$TK_SRC/tests" && /usr/bin/python3 onnx_check.py 10 "${checks[@]}" 2>&1)
diffs=$(node "$TK_SRC/tests/onnx_run.js" "$ORT_DIR" 1e-4 "${runs[@]}" 2>&1)
echo "$diffs"
for m in $models example_cnn example_resnet; do
    grep -qFx "$TK_TMP/$m.onnx: ok" <<<"$check" && ok || bad "onnx_check.py: $check"
    grep -qE "^$m.onnx: max abs diff [^ ]+ over (160|80) values$" <<<"$diffs" && ok ||
        bad "onnxruntime vs tkrun: $diffs"
done

# A second export replaces the file whole and leaves no temporary file behind.
W=run_mlp/checkpoints/final.safetensors
run export "$SCRIPTS/mlp.lua" --weights $W --onnx mlp.onnx
expect_rc 0
ls mlp.onnx.tmp.* >/dev/null 2>&1 && bad "a temporary file was left behind" || ok

run export "$SCRIPTS/mlp.lua" --onnx x.onnx
expect_rc 2
expect_err "export needs --weights W"
run export "$SCRIPTS/mlp.lua" --weights $W
expect_rc 2
expect_err "export needs --onnx OUT.onnx"
run export "$SCRIPTS/mlp.lua" --weights missing.safetensors --onnx x.onnx
expect_rc 2
expect_err "--weights missing.safetensors: no such file or directory"
run export "$SCRIPTS/mlp.lua" --weights run_cnn/checkpoints/final.safetensors --onnx x.onnx
expect_rc 2
expect_err "final.safetensors: strict init: 4 missing"
run export "$SCRIPTS/mlp.lua" --weights $W --onnx no/such/dir/x.onnx
expect_rc 2
expect_err "--onnx no/such/dir/x.onnx: the directory no/such/dir does not exist"
run export "$SCRIPTS/mlp.lua" --weights $W --onnx /proc/tkrun-export.onnx
expect_rc 1
expect_err "writing the ONNX model /proc/tkrun-export.onnx: cannot write"
[ -e x.onnx ] && bad "a failed export wrote x.onnx" || ok
finish
