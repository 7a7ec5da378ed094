# Augmentation end to end on a FashionMNIST slice: a run killed mid-epoch and resumed ends
# bit-identical to a straight run (the draws are keyed by seed, epoch and sample); with the
# learning rate at 0 the valid loss is the same with and without augmentation while the train
# loss is not (only the train split is augmented); augment on the test source or on CSV rows
# is an error naming the line or the data.
source "$(dirname "$0")/lib.bash"
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
SRC=/usr/share/datasets/fashion-mnist
if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
    echo "dataset-fashion-mnist is not installed"; exit 1
fi
/usr/bin/python3 - "$SRC" <<'PY'
import gzip, struct, sys
for name, n in [("train-images-idx3-ubyte.gz", 600), ("train-labels-idx1-ubyte.gz", 600)]:
    raw = gzip.open(sys.argv[1] + "/" + name).read()
    ndim = raw[3]
    record = 784 if ndim == 3 else 1
    head = raw[:4] + struct.pack(">I", n) + raw[8:4 + 4 * ndim]
    gzip.open(name, "wb").write(head + raw[4 + 4 * ndim:4 + 4 * ndim + n * record])
PY
script() { # script LR AUGMENT
    cat <<LUA
local nn, data = tk.nn, tk.data
return tk.pipeline {
  seed = 11,
  data = { train = data.idx { images = "train-images-idx3-ubyte.gz", labels = "train-labels-idx1-ubyte.gz",
                              scale = 1/255, normalize = { mean = 0.2860, std = 0.3530 }$2 },
           valid = data.split { fraction = 0.2 }, batch_size = 32, shuffle = true },
  model = nn.sequential { nn.conv2d(4, 3, { padding = 1 }), nn.relu(), nn.max_pool2d(2),
                          nn.flatten(), nn.linear(10) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = $1, momentum = 0.9 },
  epochs = 3,
}
LUA
}
AUG=', augment = { data.random_crop { padding = 2 }, data.random_flip {}, data.random_affine { translate = {0.1, 0.1} } }'
script 0.05 "$AUG" > aug.lua
script 0.05 "" > plain.lua
values() { cut -d, -f1-6 "$1/metrics.csv"; }

run aug.lua --run-dir straight --quiet
expect_rc 0
TK_TEST_CRASH=step:20 run aug.lua --run-dir killed --quiet
expect_rc 137
run aug.lua --resume killed --quiet
expect_rc 0
$READER same straight/checkpoints/final.safetensors killed/checkpoints/final.safetensors &&
    diff <(values straight) <(values killed) >/dev/null && ok ||
    bad "resumed mid-epoch with augmentation differs from the straight run"
run plain.lua --run-dir plain --quiet
expect_rc 0
cmp -s <(values straight) <(values plain) && bad "augmentation changed nothing" || ok

# lr = 0: the weights never move, so the valid split sees the same model either way.
script 0 "$AUG" > aug0.lua
script 0 "" > plain0.lua
run aug0.lua --run-dir aug0 --quiet
run plain0.lua --run-dir plain0 --quiet
expect_rc 0
[ "$(grep ',valid,' aug0/metrics.csv | cut -d, -f4)" = "$(grep ',valid,' plain0/metrics.csv | cut -d, -f4)" ] &&
    ok || bad "the valid split was augmented: $(grep ',valid,' aug0/metrics.csv plain0/metrics.csv)"
[ "$(grep ',train,' aug0/metrics.csv | cut -d, -f4)" != "$(grep ',train,' plain0/metrics.csv | cut -d, -f4)" ] &&
    ok || bad "the train split was not augmented"

sed 's/valid = data.split { fraction = 0.2 }/valid = data.split { fraction = 0.2 }, test = data.idx { images = "train-images-idx3-ubyte.gz", labels = "train-labels-idx1-ubyte.gz", augment = { data.random_flip {} } }/' plain.lua > bad.lua
run check bad.lua
expect_rc 2
expect_err "augment belongs on the train source (test samples are never augmented)"
cat > csv.lua <<'LUA'
return tk.pipeline {
  data = { train = tk.data.csv { path = "/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv",
                                 skip_rows = 1, augment = { tk.data.random_flip {} } } },
  model = tk.nn.sequential { tk.nn.linear(3) }, loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 }, epochs = 1,
}
LUA
run check csv.lua
expect_rc 2
expect_err "data.csv: unknown key 'augment'"
sed 's/data.random_crop { padding = 2 }/data.random_crop { size = 24, padding = 2 }/' aug.lua > bad.lua
run check bad.lua
expect_rc 2
expect_err "random_crop: size {24, 24} must be the sample size {28, 28}"
finish
