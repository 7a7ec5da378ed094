# tkrun eval and tkrun predict end to end on small CSV data: the numbers eval prints equal the
# training run's own test pass, --json is valid JSON, and every bad input (missing or
# wrong-model weights, an unknown split, bad prediction inputs) is one clear error, exit 2.
source "$(dirname "$0")/lib.bash"
PY=/usr/bin/python3
$PY - <<'PY'
import random
random.seed(5)
names = ["cat", "dog", "eel"]
with open("pets.csv", "w") as f:
    f.write("a,b,c,kind\n")
    for i in range(300):
        k = random.randrange(3)
        a, b, c = (random.gauss(2 * k + j, 0.7) for j in range(3))
        f.write(f"{a:.4f},{b:.4f},{c:.4f},{names[k]}\n")
with open("lin.csv", "w") as f:
    f.write("x1,x2,y\n")
    for i in range(200):
        a, b = random.uniform(-1, 1), random.uniform(-1, 1)
        f.write(f"{a:.4f},{b:.4f},{3*a - b + 0.2:.4f}\n")
PY
cat > pets.lua <<'LUA'
return tk.pipeline {
  seed = 2,
  data = { train = tk.data.csv { path = "pets.csv", header = true, label = "kind",
                                 normalize = "standard" },
           valid = tk.data.split { from = "train", fraction = 0.2 },
           test = tk.data.split { from = "train", fraction = 0.2 }, batch_size = 16 },
  model = tk.nn.sequential { tk.nn.linear(16), tk.nn.relu(), tk.nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 0.02 },
  metrics = { "f1", "confusion" },
  epochs = 8,
}
LUA
sed 's/linear(16)/linear(8)/' pets.lua > pets8.lua
sed '/valid = /d' pets.lua > novalid.lua
cat > lin.lua <<'LUA'
return tk.pipeline {
  seed = 1,
  data = { train = tk.data.csv { path = "lin.csv", header = true, label = "y" },
           test = tk.data.split { from = "train", fraction = 0.25 }, batch_size = 20 },
  model = tk.nn.sequential { tk.nn.linear(1) },
  loss = tk.loss.mse {},
  optimizer = tk.optim.adam { lr = 0.05 },
  epochs = 30,
}
LUA
run pets.lua --run-dir pets --quiet
expect_rc 0
train_test=$(grep '^test: ' <<<"$OUT")

# ---- eval: the same pass as training's test split (last == best here: no save.best)
run eval pets.lua --weights pets/checkpoints/last.safetensors
expect_rc 0
loss=$(sed -n 's/^loss \([0-9.]*\).*/\1/p' <<<"$OUT")
[ -n "$loss" ] && grep -qF "test: loss $loss " <<<"$train_test" && ok ||
    bad "eval loss '$loss' differs from training's '$train_test'"
# With class weights the loss is PyTorch's weighted mean over the pass, as in training's pass.
sed 's/cross_entropy {}/cross_entropy { weight = { 1, 3, 0.5 } }/' pets.lua > weighted.lua
run weighted.lua --run-dir weighted --quiet
weighted_test=$(grep '^test: ' <<<"$OUT")
run eval weighted.lua --weights weighted/checkpoints/last.safetensors
wloss=$(sed -n 's/^loss \([0-9.]*\).*/\1/p' <<<"$OUT")
[ -n "$wloss" ] && grep -qF "test: loss $wloss " <<<"$weighted_test" && ok ||
    bad "weighted eval loss '$wloss' differs from training's '$weighted_test'"
run eval pets.lua --weights pets/checkpoints/last.safetensors
expect_out "accuracy"
expect_out " f1 "
expect_out "confusion matrix"
expect_out "cat"
run eval pets.lua --weights pets --split valid
expect_rc 0
expect_out "valid split, 60 samples, weights pets/checkpoints/best.safetensors"
run eval pets.lua --weights pets --json
expect_rc 0
$PY -m json.tool <<<"$OUT" >/dev/null && ok || bad "--json is not JSON: $OUT"
$PY -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["split"] == "test" and r["samples"] == 60, r
assert [c["name"] for c in r["classes"]] == ["cat", "dog", "eel"], r["classes"]
assert sum(map(sum, r["confusion"])) == 60
assert abs(r["metrics"]["accuracy"] - sum(r["confusion"][i][i] for i in range(3)) / 60) < 1e-12
assert set(r["metrics"]) == {"accuracy", "f1"}, r["metrics"]
' <<<"$OUT" && ok || bad "--json content: $OUT"

# ---- eval: bad input
run eval pets.lua
expect_rc 2
expect_err "needs --weights"
run eval pets.lua --weights nothere.safetensors
expect_rc 2
expect_err "nothere.safetensors: no such file"
run eval pets8.lua --weights pets
expect_rc 2
expect_err "3 shape-mismatched"
run eval novalid.lua --weights pets --split valid
expect_rc 2
expect_err "--split valid: novalid.lua has no such split (it has: train, test)"
run eval pets.lua --weights pets --split tset
expect_rc 2
expect_err "it has: train, valid, test"

# ---- eval: regression
run lin.lua --run-dir lin --quiet
expect_rc 0
run eval lin.lua --weights lin
expect_rc 0
expect_out " r2 "
expect_out "rmse"
r2=$(sed -n 's/.* r2 \([-0-9.]*\).*/\1/p' <<<"$OUT" | head -1)
expect_ge "$r2" 0.95 "regression r2"
run eval lin.lua --weights lin --json
$PY -c 'import json,sys; r=json.loads(sys.stdin.read()); assert set(r["metrics"]) == {"mae","rmse","r2"} and "classes" not in r' <<<"$OUT" && ok || bad "regression json: $OUT"

# ---- predict: CSV rows, laid out like the training file or only its feature columns. A fixed
# normalisation lets numpy recompute the logits from the saved weights.
sed 's/normalize = "standard"/normalize = { mean = { 2, 3, 4 }, std = { 1.5, 1.5, 1.5 } }/' \
    pets.lua > fixed.lua
run fixed.lua --run-dir fixed --quiet
expect_rc 0
head -6 pets.csv > rows.csv
{ echo "a,b,c"; sed -n '2,6p' pets.csv | cut -d, -f1-3; } > feats.csv
run predict fixed.lua --weights fixed rows.csv feats.csv --top 3 --json
expect_rc 0
echo "$OUT" > pred.json
$PY - "$TK_SRC/tests" <<'PY' && ok || bad "CSV predictions differ from numpy's forward"
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from safetensors_reader import read
w = {k: v[1].astype(np.float64) for k, v in read("fixed/checkpoints/best.safetensors")[0].items()}
rows = np.loadtxt("pets.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2), max_rows=5)
x = (rows - np.array([2, 3, 4])) / 1.5
h = np.maximum(x @ w["0.weight"].T + w["0.bias"], 0)
z = h @ w["2.weight"].T + w["2.bias"]
p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
names = ["cat", "dog", "eel"]
got = json.load(open("pred.json"))["predictions"]
assert len(got) == 10, len(got)
for i, g in enumerate(got):
    r = i % 5
    assert g["input"] == ("rows.csv" if i < 5 else "feats.csv") + f" row {r + 2}", g["input"]
    assert [t["class"] for t in g["top"]] == list(np.argsort(-p[r])), (g, p[r])
    for t in g["top"]:
        assert t["name"] == names[t["class"]] and abs(t["probability"] - p[r][t["class"]]) < 1e-5
PY
run predict pets.lua --weights pets rows.csv --top 2
expect_rc 0
[ "$(wc -l <<<"$OUT")" = 5 ] && ok || bad "5 rows, 5 lines: $OUT"
grep -qE '^rows.csv row 2  (cat|dog|eel) [01]\.[0-9]{4}  (cat|dog|eel) [01]\.[0-9]{4}$' <<<"$OUT" &&
    ok || bad "text output: $OUT"
# The standard normalisation uses the train split's statistics: the whole file classifies well.
run predict pets.lua --weights pets pets.csv --top 1
right=$(paste -d' ' <(awk '{print $4}' <<<"$OUT") <(tail -n +2 pets.csv | cut -d, -f4) |
        awk '$1 == $2' | wc -l)
expect_ge "$right" 280 "pets.csv rows predicted right (of 300)"
# The statistics come with the weights: a training file changed since (every feature scaled
# by 10, so 'standard' would compute other means and stds) predicts exactly as before.
run predict pets.lua --weights pets feats.csv --json
before=$OUT
cp pets.csv pets.orig.csv
awk -F, -v OFS=, 'NR > 1 { $1 *= 10; $2 *= 10; $3 *= 10 } { print }' pets.orig.csv > pets.csv
run predict pets.lua --weights pets feats.csv --json
expect_rc 0
[ "$OUT" = "$before" ] && ok || bad "predict followed the changed data file, not the weights"
cp pets.orig.csv pets.csv
# skip_rows describes the training file (a count row, as iris.csv has): inputs keep every row.
{ echo "300,3"; cat pets.csv; } > counted.csv
sed 's/path = "pets.csv", header = true/path = "counted.csv", skip_rows = 1, header = true/' \
    pets.lua > counted.lua
run counted.lua --run-dir counted --quiet --epochs 1
run predict counted.lua --weights counted feats.csv
expect_rc 0
[ "$(wc -l <<<"$OUT")" = 5 ] && ok || bad "skip_rows dropped input rows: $OUT"
expect_out "feats.csv row 2  "
printf 'a,b,c,kind\n1,2,3,cat\n4,5\n' > short.csv
run predict pets.lua --weights pets short.csv
expect_rc 2
expect_err "short.csv:3: expected 4 columns, found 2"
printf '1,2\n' > two.csv
run predict pets.lua --weights pets two.csv
expect_rc 2
expect_err "two.csv:1: 2 columns, but the training file has 4 (or give only its 3 feature columns)"
printf 'a,b,c\n1,x,3\n' > word.csv
run predict pets.lua --weights pets word.csv
expect_rc 2
expect_err "word.csv:2: column 2: 'x' is not a number"
run predict lin.lua --weights lin feats.csv
expect_rc 2
expect_err "feats.csv: no column named 'y' (columns: a, b, c)"
printf 'x1,x2\n0.5,0.5\n' > lrow.csv
run predict lin.lua --weights lin lrow.csv
expect_rc 0
v=$(awk '{print $NF}' <<<"$OUT")
awk -v v="$v" 'BEGIN { exit !(v > 1.1 && v < 1.3) }' && ok || bad "regression value $v (3a - b + 0.2 = 1.2)"
run predict pets.lua rows.csv
expect_rc 2
expect_err "needs --weights"
run predict pets.lua --weights pets
expect_rc 2
expect_err "needs inputs"
run predict pets8.lua --weights pets rows.csv
expect_rc 2
expect_err "3 shape-mismatched"
run predict pets.lua --weights pets missing.csv
expect_rc 2
expect_err "missing.csv: cannot open"
run predict pets.lua --weights pets .
expect_rc 2
expect_err ".: not a regular file"

# ---- predict: images and .npy on a FashionMNIST slice, against numpy's forward of the IDX
# samples (scale 1/255 and the script's normalisation, as training saw them).
SRC=/usr/share/datasets/fashion-mnist
mkdir -p data/fashion-mnist
$PY - "$SRC" <<'PY'
import gzip, struct, sys
import numpy as np
from PIL import Image
def cut(name, n):
    raw = gzip.open(sys.argv[1] + "/" + name).read()
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    record = int(np.prod(dims[1:])) if ndim > 1 else 1
    head = raw[:4] + struct.pack(">I", n) + raw[8:4 + 4 * ndim]
    body = raw[4 + 4 * ndim:][:n * record]
    gzip.open("data/fashion-mnist/" + name, "wb").write(head + body)
    return np.frombuffer(body, np.uint8)
cut("train-images-idx3-ubyte.gz", 600); cut("train-labels-idx1-ubyte.gz", 600)
test = cut("t10k-images-idx3-ubyte.gz", 50).reshape(50, 28, 28); cut("t10k-labels-idx1-ubyte.gz", 50)
np.save("test3.npy", test[:3])
np.save("one.npy", test[3].astype(np.float32))
np.save("wrong.npy", np.zeros((5, 5), np.float32))
Image.fromarray(test[0]).save("grey.png")
Image.fromarray(np.stack([test[1]] * 3, -1)).save("rgb.png")
Image.fromarray(test[2]).save("grey.jpg", quality=100)
Image.fromarray(test[2]).resize((56, 56), Image.NEAREST).save("big.png")
open("corrupt.png", "wb").write(open("grey.png", "rb").read()[:60])
PY
export TK_DATA=$PWD/data
cat > fm.lua <<'LUA'
local norm = { mean = 0.2860, std = 0.3530 }
return tk.pipeline {
  seed = 4,
  data = { train = tk.data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                                 labels = "fashion-mnist/train-labels-idx1-ubyte.gz",
                                 scale = 1/255, normalize = norm },
           test = tk.data.idx { images = "fashion-mnist/t10k-images-idx3-ubyte.gz",
                                labels = "fashion-mnist/t10k-labels-idx1-ubyte.gz",
                                scale = 1/255, normalize = norm },
           batch_size = 32 },
  model = tk.nn.sequential { tk.nn.flatten(), tk.nn.linear(32), tk.nn.relu(), tk.nn.linear(10) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 3e-3 },
  epochs = 2,
}
LUA
run fm.lua --run-dir fm --quiet
expect_rc 0
run predict fm.lua --weights fm grey.png rgb.png test3.npy one.npy --top 10 --json
expect_rc 0
echo "$OUT" > fm.json
$PY - "$TK_SRC/tests" <<'PY' && ok || bad "image/npy predictions differ from numpy's forward"
import json, sys, gzip
import numpy as np
sys.path.insert(0, sys.argv[1])
from safetensors_reader import read
w = {k: v[1].astype(np.float64) for k, v in read("fm/checkpoints/last.safetensors")[0].items()}
raw = gzip.open("data/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:]
x = (np.frombuffer(raw, np.uint8).reshape(50, 784)[:4] / 255 - 0.2860) / 0.3530
z = np.maximum(x @ w["1.weight"].T + w["1.bias"], 0) @ w["3.weight"].T + w["3.bias"]
p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
got = json.load(open("fm.json"))["predictions"]
want = [("grey.png", 0), ("rgb.png", 1), ("test3.npy[0]", 0), ("test3.npy[1]", 1),
        ("test3.npy[2]", 2), ("one.npy", 3)]
assert [g["input"] for g in got] == [n for n, _ in want], [g["input"] for g in got]
for g, (_, r) in zip(got, want):
    probs = {t["class"]: t["probability"] for t in g["top"]}
    assert len(probs) == 10 and max(abs(probs[c] - p[r][c]) for c in range(10)) < 1e-4, (g, p[r])
PY
run predict fm.lua --weights fm grey.jpg big.png
expect_rc 0
expect_out "grey.jpg  "
expect_out "big.png  "
[ "$(head -1 <<<"$OUT" | wc -w)" = 11 ] && ok || bad "top 5 by default: $OUT"
run predict fm.lua --weights fm grey.png corrupt.png
expect_rc 2
expect_err "corrupt.png"
[ -z "$OUT" ] && ok || bad "nothing is printed when an input is bad: $OUT"
run predict fm.lua --weights fm wrong.npy
expect_rc 2
expect_err "wrong.npy: an array of shape (5, 5), but the model takes samples of shape (1, 28, 28)"
run predict pets.lua --weights pets grey.png
expect_rc 2
expect_err "grey.png: an image, but the model takes samples of shape (3,)"
run predict fm.lua --weights fm rows.csv
expect_rc 2
expect_err "the script's training data is not a CSV file"
finish
