# tkrun summary against torchinfo 1.8.0: the tables tests/gen_fixtures_summary.py computed from
# the PyTorch twins of the three FashionMNIST examples (layer tree, output shapes, Param #,
# Mult-Adds, totals and sizes) must come out character for character. The data is a small
# slice of Debian's dataset-fashion-mnist: the summary only needs the sample shape.
source "$(dirname "$0")/lib.bash"
SRC=/usr/share/datasets/fashion-mnist
if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
    echo "dataset-fashion-mnist is not installed"; exit 1
fi
mkdir -p data/fashion-mnist
/usr/bin/python3 - "$SRC" <<'PY'
import gzip, struct, sys
for name, n in [("train-images-idx3-ubyte.gz", 200), ("train-labels-idx1-ubyte.gz", 200),
                ("t10k-images-idx3-ubyte.gz", 100), ("t10k-labels-idx1-ubyte.gz", 100)]:
    raw = gzip.open(sys.argv[1] + "/" + name).read()
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    record = 1
    for d in dims[1:]:
        record *= d
    head = raw[:4] + struct.pack(">I", n) + raw[8:4 + 4 * ndim]
    gzip.open("data/fashion-mnist/" + name, "wb").write(head + raw[4 + 4 * ndim:][:n * record])
PY
export TK_DATA=$PWD/data
for name in mlp cnn resnet; do
    run summary "$TK_SRC/examples/fashion_mnist/$name.lua"
    expect_rc 0
    diff <(printf '%s\n' "$OUT") "$TK_SRC/tests/fixtures/summary_$name.txt" >diff_$name.txt &&
        ok || bad "$name: summary differs from torchinfo's: $(cat diff_$name.txt)"
done
# The batch size is part of every shape, mult-add and size, as it is in torchinfo's input_size.
run summary "$TK_SRC/examples/fashion_mnist/mlp.lua" --set data.batch_size=32
expect_out "├─Linear: 1-2                            [32, 512]                 401,920                   12,861,440"
expect_out "Input size (MB): 0.10"
# A nested sequential without a node of its own gets a container row, as in torchinfo.
cat > nested.lua <<'LUA'
return tk.pipeline {
  data = { train = tk.data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                                 labels = "fashion-mnist/train-labels-idx1-ubyte.gz" },
           batch_size = 8 },
  model = tk.nn.sequential { tk.nn.flatten(),
                             tk.nn.sequential { tk.nn.linear(16), tk.nn.relu() },
                             tk.nn.linear(10) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
}
LUA
run summary nested.lua
expect_rc 0
expect_out "├─Sequential: 1-2                        [8, 16]                   --                        --"
expect_out "│    └─Linear: 2-1                       [8, 16]                   12,560                    100,480"
expect_out "├─Linear: 1-3                            [8, 10]                   170                       1,360"
expect_out "Total params: 12,730"
# Frozen parameters: torchinfo puts a layer whose parameters train none in parentheses and
# counts them as non-trainable.
sed 's/optimizer = tk.optim.sgd { lr = 0.1 }/optimizer = tk.optim.sgd { lr = 0.1, freeze = { "1.0.*" } }/' \
    nested.lua > frozen.lua
run summary frozen.lua
expect_rc 0
expect_out "│    └─Linear: 2-1                       [8, 16]                   (12,560)                  100,480"
expect_out "├─Linear: 1-3                            [8, 10]                   170                       1,360"
expect_out "Trainable params: 170"
expect_out "Non-trainable params: 12,560"
finish
