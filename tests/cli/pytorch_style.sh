# Scripts written the way a PyTorch user writes them: positional in/out arguments build the
# model PyTorch would build, train as expected, and any mismatch with the data is a shape
# error at check time that names the script line.
source "$(dirname "$0")/lib.bash"
IRIS=/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv
IDX=/usr/share/datasets/fashion-mnist

# iris_script MODEL_LINES...: an iris pipeline around the given model
iris_script() {
    cat <<LUA
local nn = tk.nn
return tk.pipeline {
  seed = 5,
  data = { train = tk.data.csv { "$IRIS", skip_rows = 1, normalize = "standard" },
           valid = tk.data.split(0.2), batch_size = 16 },
  model = nn.sequential(
$(printf '    %s\n' "$@")
  ),
  loss = "cross_entropy",
  optimizer = tk.optim.adam(1e-2),
  epochs = 40,
}
LUA
}

# The PyTorch way, trained: 4 features in, batch norm on 32, 3 classes out.
iris_script 'nn.linear(4, 32),' 'nn.batch_norm1d(32),' 'nn.relu(),' 'nn.linear(32, 3)' > torch_way.lua
run summary torch_way.lua
expect_rc 0
expect_out "[16, 32]"
expect_out "Total params: 323"     # 4*32+32 + 2*32 (bn) + 32*3+3
run torch_way.lua --run-dir run1 --quiet
expect_rc 0
acc=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "valid_accuracy") c = i } END { print $c }' \
    run1/metrics.csv)
expect_ge "$acc" 0.9 "valid accuracy of the PyTorch-style iris model"

# in_features that do not match the data: the line of the layer, at check time.
iris_script 'nn.linear(13, 32),' 'nn.relu(),' 'nn.linear(32, 3)' > wrong_in.lua
run check wrong_in.lua
expect_rc 2
expect_err "wrong_in.lua:7: layer '0' (linear): input of shape (16, 4) does not fit in_features=13"
[ ! -e runs ] && ok || bad "check wrote a run directory"

# The second layer's in_features disagree with the first layer's out_features.
iris_script 'nn.linear(4, 32),' 'nn.relu(),' 'nn.linear(48, 3)' > wrong_mid.lua
run check wrong_mid.lua
expect_rc 2
expect_err "wrong_mid.lua:9: layer '2' (linear): input of shape (16, 32) does not fit in_features=48"

iris_script 'nn.linear(4, 32),' 'nn.batch_norm1d(16),' 'nn.linear(32, 3)' > wrong_bn.lua
run check wrong_bn.lua
expect_rc 2
expect_err "wrong_bn.lua:8: layer '1' (batch_norm1d)"
expect_err "num_features=16"

iris_script 'nn.linear(4, 8),' 'nn.layer_norm(6),' 'nn.linear(8, 3)' > wrong_ln.lua
run check wrong_ln.lua
expect_rc 2
expect_err "wrong_ln.lua:8: layer '1' (layer_norm)"

# An extra positional argument is never dropped.
iris_script 'nn.linear(4, 32, true, 7),' 'nn.linear(32, 3)' > extra.lua
run check extra.lua
expect_rc 2
expect_err "extra.lua:7: nn.linear: unexpected positional argument #4 (7); accepted forms: nn.linear(out_features), nn.linear(in_features, out_features[, bias])"

# A PyTorch-style CNN on FashionMNIST: Conv2d(in, out, k, stride, padding) and pools.
cnn_script() {
    cat <<LUA
local nn = tk.nn
return tk.pipeline {
  data = { train = tk.data.idx("$IDX/t10k-images-idx3-ubyte.gz", "$IDX/t10k-labels-idx1-ubyte.gz"),
           batch_size = 64 },
  model = nn.sequential(
    nn.conv2d($1, 32, 3, 1, 1), nn.relu(), nn.max_pool2d(2, 2),
    nn.conv2d(32, 64, 3, 1, 1), nn.batch_norm2d($2), nn.relu(), nn.max_pool2d(2),
    nn.flatten(), nn.linear(64 * 7 * 7, 10)
  ),
  loss = "cross_entropy",
  optimizer = tk.optim.sgd(0.01, 0.9),
}
LUA
}
cnn_script 1 64 > cnn.lua
run summary cnn.lua
expect_rc 0
expect_out "[64, 32, 28, 28]"
expect_out "[64, 64, 7, 7]"
expect_out "Total params: 50,314"   # 320 + 18,496 + 128 (bn) + 31,370, as torch counts them
cnn_script 3 64 > cnn_rgb.lua
run check cnn_rgb.lua
expect_rc 2
expect_err "cnn_rgb.lua:6: layer '0' (conv2d)"
cnn_script 1 32 > cnn_bn.lua
run check cnn_bn.lua
expect_rc 2
expect_err "cnn_bn.lua:7: layer '4' (batch_norm2d)"

# The thread count changes no bit: the CNN (conv, pooling, split products, Adam) trained on
# 1 and on 3 threads ends with the same weights. 1000 training images keep it short.
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
sed -e 's/batch_size = 64 },/batch_size = 64, valid = tk.data.split(0.9) },/' \
    -e 's/tk.optim.sgd(0.01, 0.9)/tk.optim.adam(1e-3)/' cnn.lua > cnn_threads.lua
for t in 1 3; do
    run cnn_threads.lua --run-dir threads$t --threads "$t" --epochs 1 --quiet
    expect_rc 0
done
$READER same threads1/checkpoints/final.safetensors threads3/checkpoints/final.safetensors && ok ||
    bad "the CNN's weights differ between 1 and 3 threads"

finish
