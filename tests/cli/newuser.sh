# What a new user trips over (issue 16): help and --version; --quiet still names the run;
# resume with any thread count stays bit-exact and prints a hint that reproduces the run; the resume diff
# by key path; a weighted loss reported as the mean over the whole split (checked by hand
# with numpy); preprocessing, split and classes in every checkpoint; I64 num_batches_tracked;
# every data file hashed; frozen tensors and empty groups in the group table; the README's
# PyTorch snippet run as written.
source "$(dirname "$0")/lib.bash"
PY=/usr/bin/python3
READER="$PY $TK_SRC/tests/safetensors_reader.py"
IRIS=/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv
# meta FILE KEY: a metadata value (all of a file's metadata read once, by one Python start)
meta() {
    [ -f "$1.meta" ] || $PY -c 'import json, struct, sys
raw = open(sys.argv[1], "rb").read(8 + struct.unpack("<Q", open(sys.argv[1], "rb").read(8))[0])
for k, v in json.loads(raw[8:]).get("__metadata__", {}).items():
    print(k + "=" + v.replace("\n", " "))' "$1" >"$1.meta"
    grep -F "$2=" "$1.meta" | grep "^$2=" | head -1 | cut -d= -f2-
}

# ---------------------------------------------------------------- help, --version (item 5)
run --version
expect_rc 0
expect_out "tkrun 0.1.0"
expect_out "OpenBLAS"
run help
expect_rc 0
expect_out "commands:"
run help train
expect_rc 0
expect_out "--threads N"
run train --help
expect_rc 0
expect_out "--resume CKPT|RUN_DIR"
run help trian
expect_rc 2
expect_err "did you mean 'train'?"

# ---------------------------------------------------------------- data files
# iris without its count row, every 4th row in a test file of its own (iris is sorted by
# class); a string-labelled copy; the labels in a CSV of their own.
tail -n +2 "$IRIS" | awk 'NR % 4' >train.csv
tail -n +2 "$IRIS" | awk 'NR % 4 == 0' >test.csv
awk -F, 'BEGIN { split("setosa versicolor virginica", n, " ") }
         { print $1 "," $2 "," $3 "," $4 "," n[$5 + 1] }' train.csv >named.csv
cut -d, -f1-4 train.csv >features.csv
cut -d, -f5 train.csv >labels.csv

# pipeline NAME TRAIN_SPEC MODEL LOSS EXTRA: a script on these files
pipeline() {
    cat <<EOF
return tk.pipeline {
  name = "$1", seed = 3,
  data = { train = $2, batch_size = 16, shuffle = true $5 },
  model = tk.nn.sequential { $3 },
  loss = $4,
  optimizer = tk.optim.sgd { lr = 0.05, momentum = 0.9 },
  epochs = 3,
}
EOF
}
CSV='tk.data.csv { path = "train.csv", normalize = "standard" }'
MLP='tk.nn.linear(8), tk.nn.relu(), tk.nn.linear(3)'
pipeline plain "$CSV" "$MLP" 'tk.loss.cross_entropy {}' \
    ', valid = tk.data.split { from = "train", fraction = 0.2 }' >plain.lua

# ---------------------------------------------------------------- --quiet (item 6)
run plain.lua --run-dir quiet --quiet
expect_rc 0
expect_out "run directory: quiet"
[ "$(grep -c '^epoch ' <<<"$OUT")" = 1 ] && expect_out "epoch 3/3  train loss" ||
    bad "--quiet shows not exactly the last epoch line: $OUT"

# ---------------------------------------------------------------- threads, resume hint (item 1)
run plain.lua --run-dir straight1 --quiet --threads 1 --epochs 4
[ "$(meta straight1/checkpoints/last.safetensors threads)" = 1 ] && ok ||
    bad "the checkpoint does not record the thread count"
TK_TEST_CRASH=int:10 run plain.lua --run-dir cut1 --quiet --threads 1 --epochs 4 \
    --set optimizer.lr=0.05
expect_rc 130
expect_err "resume with: tkrun plain.lua --resume cut1 --threads 1 --set epochs=4 \
--set optimizer.lr=0.05"
#    Resumed with other thread counts: still bit-identical to the straight run.
run plain.lua --resume cut1 --quiet --epochs 4 --threads 3
expect_rc 0
$READER same straight1/checkpoints/final.safetensors cut1/checkpoints/final.safetensors && ok ||
    bad "resumed with 3 threads, the weights differ from the straight run with 1"
TK_TEST_CRASH=int:10 run plain.lua --run-dir cut2 --quiet --threads 2 --epochs 4
run plain.lua --resume cut2 --quiet --epochs 4
expect_rc 0
$READER same straight1/checkpoints/final.safetensors cut2/checkpoints/final.safetensors && ok ||
    bad "cut with 2 threads and resumed at the default, the weights differ from the straight run"

# ---------------------------------------------------------------- resume diff (item 4)
TK_TEST_CRASH=int:10 run plain.lua --run-dir diffrun --quiet --epochs 4
{ echo "-- a comment that moves every line tag"; cat plain.lua; } >plain2.lua
run plain2.lua --resume diffrun --quiet --epochs 4
expect_rc 0
grep -q "changed since the checkpoint" <<<"$OUT" && bad "a comment line printed a diff: $OUT" || ok
TK_TEST_CRASH=int:10 run plain.lua --run-dir diffrun2 --quiet --epochs 4
sed 's/lr = 0.05/lr = 0.01/' plain2.lua >plain3.lua
run plain3.lua --resume diffrun2 --quiet --epochs 4
expect_out "the script changed since the checkpoint:"
expect_out "  optimizer.lr: 0.05 -> 0.01"
[ "$(grep -c '^  ' <<<"$OUT")" = 1 ] && ok || bad "the lr change printed more than one line: $OUT"

# ---------------------------------------------------------------- weighted loss (item 2)
# The reported loss is the weighted mean over the whole split, whatever the batch size:
# sum(w[y] * loss) / sum(w[y]) over the rows that count, as PyTorch's reduction='mean' on
# the full set. Checked by hand (numpy) on the test file with the final weights.
weighted() { # weighted NAME LOSS
    pipeline "$1" "$CSV" "$MLP" "$2" \
        ', test = tk.data.csv { path = "test.csv", normalize = "standard" }'
}
check_weighted() { # check_weighted RUN WEIGHTS IGNORE [LOGSOFTMAX]
    $PY - "$@" <<'EOF'
import json, struct, sys
import numpy as np
run, weights, ignore = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
raw = open(run + "/checkpoints/final.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__")
t = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                      "<f4").reshape(v["shape"]).astype(np.float64) for k, v in header.items()}
data = np.loadtxt("test.csv", delimiter=",")
mul = np.array([float(v) for v in meta["data.mul"].split(",")])
add = np.array([float(v) for v in meta["data.add"].split(",")])
x, y = data[:, :4] * mul + add, data[:, 4].astype(int)
z = np.maximum(x @ t["0.weight"].T + t["0.bias"], 0) @ t["2.weight"].T + t["2.bias"]
m = z.max(1, keepdims=True)
lse = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
keep = y != ignore
w = np.array(weights)[y[keep]]
want = (w * (lse[keep] - z[keep, y[keep]])).sum() / w.sum()
got = float([l for l in open(run + "/metrics.csv") if ",test," in l][0].split(",")[3])
if abs(got - want) > 2e-6 * max(1, abs(want)):
    sys.exit("test loss %.7f, numpy says %.7f" % (got, want))
EOF
}
weighted wce 'tk.loss.cross_entropy { weight = {1, 3, 0.5} }' >wce.lua
run wce.lua --run-dir wce16 --quiet
expect_rc 0
check_weighted wce16 '[1, 3, 0.5]' -100 && ok || bad "weighted cross_entropy test loss"
#    ignore_index rows count for nothing: neither the sum nor the divisor.
weighted wign 'tk.loss.cross_entropy { weight = {1, 3, 0.5}, ignore_index = 2 }' >wign.lua
run wign.lua --run-dir wign --quiet --set data.drop_last=true    # no batch of ignored rows only
expect_rc 0
check_weighted wign '[1, 3, 0.5]' 2 && ok || bad "weighted cross_entropy with ignore_index"
#    nll with weights: the valid loss of untrained weights (lr 0) does not depend on the batch.
pipeline nllw "$CSV" "$MLP, tk.nn.log_softmax()" 'tk.loss.nll { weight = {2, 1, 0.25} }' \
    ', valid = tk.data.split { from = "train", fraction = 0.3 }' >nllw.lua
run nllw.lua --run-dir nll16 --quiet --epochs 1 --set optimizer.lr=0
run nllw.lua --run-dir nll77 --quiet --epochs 1 --set optimizer.lr=0 --set data.batch_size=77
valid_loss() { sed -n 's/.* loss \([0-9.]*\) .*/\1/p' "$1/valid.log"; }
[ -n "$(valid_loss nll16)" ] && [ "$(valid_loss nll16)" = "$(valid_loss nll77)" ] && ok ||
    bad "weighted nll valid loss depends on the batch size: $(valid_loss nll16), $(valid_loss nll77)"

# ---------------------------------------------------------------- preprocessing (item 3)
pipeline named 'tk.data.csv { path = "named.csv", normalize = "standard" }' "$MLP" \
    'tk.loss.cross_entropy {}' ', valid = tk.data.split { from = "train", fraction = 0.2 }' \
    >named.lua
run named.lua --run-dir named --quiet --set save.best=valid.loss
expect_rc 0
for f in best last final; do
    [ "$(meta named/checkpoints/$f.safetensors data.classes)" = \
      '{"setosa": 0, "versicolor": 1, "virginica": 2}' ] && ok ||
        bad "$f.safetensors lacks the class map"
    [ "$(meta named/checkpoints/$f.safetensors data.normalize)" = standard ] && ok ||
        bad "$f.safetensors lacks data.normalize"
done
[ "$(meta named/checkpoints/best.safetensors data.valid.samples)" = 23 ] &&
    [ "$(meta named/checkpoints/best.safetensors data.valid.fraction)" = 0.20000000000000001 ] &&
    [ "$(meta named/checkpoints/best.safetensors data.split_seed)" = 3 ] &&
    [ -n "$(meta named/checkpoints/best.safetensors data.valid.indices_crc32)" ] && ok ||
    bad "the split is not recorded"
grep -q "classes 3: setosa=0 versicolor=1 virginica=2" named/note.log && ok ||
    bad "note.log lacks the class map"
grep -q "normalize standard, scale 1 (train statistics): mean \[" named/note.log && ok ||
    bad "note.log lacks the normalisation"
#    Without a split the statistics are those of the whole file (population std).
pipeline nosplit "$CSV" "$MLP" 'tk.loss.cross_entropy {}' '' >nosplit.lua
run nosplit.lua --run-dir nosplit --quiet --epochs 1
$PY - <<'EOF' && ok || bad "data.mean/data.std are not the train statistics"
import json, struct, sys
import numpy as np
raw = open("nosplit/checkpoints/final.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
meta = json.loads(raw[8:8 + n])["__metadata__"]
x = np.loadtxt("train.csv", delimiter=",")[:, :4]
mean = np.array([float(v) for v in meta["data.mean"].split(",")])
std = np.array([float(v) for v in meta["data.std"].split(",")])
sys.exit(not (np.allclose(mean, x.mean(0), rtol=1e-6) and np.allclose(std, x.std(0), rtol=1e-6)))
EOF
[ "$(meta nosplit/checkpoints/final.safetensors data.train.indices_crc32)" != \
  "$(meta named/checkpoints/final.safetensors data.train.indices_crc32)" ] && ok ||
    bad "different train splits have the same index CRC"

# ---------------------------------------------------------------- num_batches_tracked (item 9)
pipeline bn "$CSV" 'tk.nn.linear(8), tk.nn.batch_norm1d(), tk.nn.relu(), tk.nn.linear(3)' \
    'tk.loss.cross_entropy {}' ', valid = tk.data.split { from = "train", fraction = 0.2 }' >bn.lua
run bn.lua --run-dir bn --quiet --set save.best=valid.loss
expect_rc 0
for f in best last final; do
    names=$($READER names bn/checkpoints/$f.safetensors)
    [ "$(grep -c "^1.num_batches_tracked I64 ()$" <<<"$names")" = 1 ] && ok ||
        bad "$f.safetensors: num_batches_tracked is not I64"
done
counter() { # the value of FILE's num_batches_tracked, read as the int64 it must be
    $PY - "$1" <<'EOF'
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
a, b = json.loads(raw[8:8 + n])["1.num_batches_tracked"]["data_offsets"]
print(int(np.frombuffer(raw[8 + n + a:8 + n + b], "<i8")[0]))
EOF
}
[ "$(counter bn/checkpoints/final.safetensors)" = 18 ] && ok ||
    bad "num_batches_tracked is not 3 epochs x 6 batches"
#    Both dtypes load: resume from I64, --init from a file with an F32 counter.
TK_TEST_CRASH=int:8 run bn.lua --run-dir bncut --quiet
run bn.lua --resume bncut --quiet
expect_rc 0
$READER same bn/checkpoints/final.safetensors bncut/checkpoints/final.safetensors && ok ||
    bad "resume through an I64 counter differs"
$PY - <<'EOF'
import json, struct
import numpy as np
raw = open("bn/checkpoints/final.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
meta = h.pop("__metadata__")
parts, out, off = {}, {}, 0
for k in sorted(h):
    a = np.frombuffer(raw[8 + n + h[k]["data_offsets"][0]:8 + n + h[k]["data_offsets"][1]],
                      "<i8" if h[k]["dtype"] == "I64" else "<f4").astype("<f4")
    out[k] = {"dtype": "F32", "shape": h[k]["shape"], "data_offsets": [off, off + a.nbytes]}
    parts[k] = a.tobytes()
    off += a.nbytes
head = json.dumps(out).encode()
body = b"".join(parts[k] for k in sorted(h))
open("f32.safetensors", "wb").write(struct.pack("<Q", len(head)) + head + body)
EOF
run bn.lua --run-dir bninit --quiet --epochs 1 --init f32.safetensors
expect_rc 0
expect_out "init from f32.safetensors: 9 loaded, 0 missing"

# ---------------------------------------------------------------- data file hashes (item 10)
crc() { $PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$1"; }
pipeline split_labels 'tk.data.csv { path = "features.csv", label = tk.data.csv { path = "labels.csv" } }' \
    "$MLP" 'tk.loss.cross_entropy {}' '' >split_labels.lua
run check split_labels.lua
expect_rc 0
expect_out "features.csv (crc32 $(crc features.csv))"
expect_out "labels.csv (crc32 $(crc labels.csv))"
FM=/usr/share/datasets/fashion-mnist
if [ -r "$FM/t10k-labels-idx1-ubyte.gz" ]; then
    cat >idx.lua <<EOF
return tk.pipeline {
  name = "idx", seed = 1,
  data = { train = tk.data.idx { images = "$FM/t10k-images-idx3-ubyte.gz",
                                 labels = "$FM/t10k-labels-idx1-ubyte.gz", scale = 1/255 } },
  model = tk.nn.sequential { tk.nn.flatten(), tk.nn.linear(10) },
  loss = tk.loss.cross_entropy {}, optimizer = tk.optim.sgd { lr = 0.1 }, epochs = 1,
}
EOF
    run check idx.lua
    expect_rc 0
    expect_out "t10k-images-idx3-ubyte.gz (crc32 $(crc $FM/t10k-images-idx3-ubyte.gz))"
    expect_out "t10k-labels-idx1-ubyte.gz (crc32 $(crc $FM/t10k-labels-idx1-ubyte.gz))"
else
    echo "skipped the IDX hashes: $FM not installed"
fi

# ---------------------------------------------------------------- group table (item 11)
cat >groups.lua <<EOF
return tk.pipeline {
  name = "groups", seed = 1,
  data = { train = $CSV },
  model = tk.nn.sequential { tk.nn.linear(8), tk.nn.relu(), tk.nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1, freeze = { "0.*" },
                             groups = { { match = "0.*", lr = 0.5 }, { match = "2.*", lr = 0.01 } } },
  epochs = 1,
}
EOF
run check groups.lua
expect_rc 0
expect_out "      2.weight, 2.bias"
grep -qE "^frozen +2 +40 " <<<"$OUT" && ok || bad "no frozen row with 2 tensors, 40 elements: $OUT"
expect_out "      0.weight, 0.bias"
expect_out "warning: group 1 (0.*) has no tensors"
grep -q "warning: group 0" <<<"$OUT" && bad "an empty default group is warned about" || ok
#    Training says it too, not only note.log.
run groups.lua --run-dir groups --quiet
expect_rc 0
expect_out "warning: optimizer group 1 (0.*) has no tensors"
grep -q "warning: group 1 (0.\*) has no tensors" groups/note.log && ok || bad "note.log lacks the warning"
#    A long list keeps its first names and counts the rest.
LONG=$(for i in $(seq 1 30); do printf 'tk.nn.linear(4), '; done)
pipeline long "$CSV" "$LONG tk.nn.linear(3)" 'tk.loss.cross_entropy {}' '' >long.lua
run check long.lua
expect_rc 0
grep -qE "^      0.weight, 0.bias, .*, \.\.\. \([0-9]+ more\)$" <<<"$OUT" && ok ||
    bad "a long tensor list is not abbreviated: $OUT"

# ---------------------------------------------------------------- the README snippet (item 8)
# The Python block of README.md that loads best.safetensors, as written, against a run of
# breast_cancer.lua in runs/bc, strict into the equivalent torch module.
awk '/^```python$/ { on = 1; next } /^```$/ { on = 0 } on' "$TK_SRC/README.md" >snippet.py
grep -q "load_state_dict" snippet.py && ok || bad "README has no Python snippet loading the weights"
grep -q "safetensors.torch" snippet.py && bad "the README snippet needs safetensors.torch" || ok
run "$TK_SRC/examples/breast_cancer.lua" --run-dir runs/bc --quiet --epochs 2
expect_rc 0
echo 'print("loaded", sum(p.numel() for p in model.parameters()))' >>snippet.py
SNIP=$($PY snippet.py 2>&1)
if grep -q "No module named 'torch'" <<<"$SNIP"; then
    echo "skipped running the README snippet: no torch for $PY"
else
    grep -q "^loaded 1058$" <<<"$SNIP" && ok || bad "the README snippet failed: $SNIP"
fi

finish
