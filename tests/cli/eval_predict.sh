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
finish
