# FashionMNIST smoke run on a slice (the first 3000 train and 1000 test images of Debian's
# dataset-fashion-mnist): the real IDX .gz files through the real example's model.
source "$(dirname "$0")/lib.bash"
SRC=/usr/share/datasets/fashion-mnist
if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
    echo "dataset-fashion-mnist is not installed"; exit 1
fi
mkdir -p fashion-mnist
# The first N records of each file, with the count in the IDX header rewritten.
/usr/bin/python3 - "$SRC" <<'PY'
import gzip, struct, sys
for name, n in [("train-images-idx3-ubyte.gz", 3000), ("train-labels-idx1-ubyte.gz", 3000),
                ("t10k-images-idx3-ubyte.gz", 1000), ("t10k-labels-idx1-ubyte.gz", 1000)]:
    raw = gzip.open(sys.argv[1] + "/" + name).read()
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    record = 1
    for d in dims[1:]:
        record *= d
    head = raw[:4] + struct.pack(">I", n) + raw[8:4 + 4 * ndim]
    body = raw[4 + 4 * ndim:4 + 4 * ndim + n * record]
    gzip.open("fashion-mnist/" + name, "wb").write(head + body)
PY
sed 's/epochs = 10/epochs = 2/' "$TK_SRC/examples/fashion_mnist/mlp.lua" > mlp.lua
run mlp.lua --run-dir run --set schedule.warmup_steps=20
expect_rc 0
expect_out "test: loss"
acc=$(sed -n 's/^test: loss [0-9.]* accuracy \([0-9.]*\)$/\1/p' <<<"$OUT")
expect_ge "$acc" 0.70 "FashionMNIST slice test accuracy"
grep -qE "train +2700 samples" run/note.log && ok || bad "note.log data lines: $(grep samples run/note.log)"
finish
