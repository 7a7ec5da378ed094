# Scripts beyond a plain sequential model and runs that go wrong: an nn.graph model with a
# branch, concat and a shared layer trains; a group that matches no parameter is an error at
# the script's line; a loss that turns non-finite stops the run (exit 1) naming epoch, step
# and batch and keeps the last good checkpoint, or, with on_nonfinite = "skip", is skipped.
source "$(dirname "$0")/lib.bash"
/usr/bin/python3 - <<'PY'
import random
random.seed(5)
with open("blobs.csv", "w") as f:
    for i in range(96):
        c = i % 3
        f.write(f"{random.gauss(c, 0.5):.4f},{random.gauss(-c, 0.5):.4f},{random.gauss(0, 1):.4f},{c}\n")
PY
cat > graph.lua <<'LUA'
local nn = tk.nn
local shared = nn.linear { out_features = 8, name = "shared" }
return tk.pipeline {
  seed = 1,
  data = { train = tk.data.csv { path = "blobs.csv" },
           valid = tk.data.split { from = "train", fraction = 0.25 }, batch_size = 16 },
  model = nn.graph(function(x)
    local a = nn.relu()(shared(x))
    local b = nn.tanh()(nn.linear(8)(x))
    local h = nn.concat { a, b, dim = 1 }
    return nn.linear(3)(h + nn.concat { b, a, dim = 1 })
  end),
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 0.05 },
  epochs = 30,
}
LUA
run check graph.lua
expect_rc 0
expect_out "concat"
expect_out "shared"
run graph.lua --run-dir graph_run --quiet
expect_rc 0
expect_ge "$(grep ',valid,' graph_run/metrics.csv | tail -1 | cut -d, -f5)" 0.8 "graph model valid accuracy"

sed 's/optimizer = tk.optim.adam { lr = 0.05 },/optimizer = tk.optim.adam { lr = 0.05, groups = { { match = "*.bais", lr = 0.01 } } },/' \
    graph.lua > group.lua
run check group.lua
expect_rc 2
expect_err "group.lua:14: optimizer group 1 (match '*.bais') matches no parameter"

sed 's/lr = 0.05 }/lr = 1e30 }/; s/epochs = 30/epochs = 3/' graph.lua > explode.lua
run explode.lua --run-dir boom --quiet
expect_rc 1
expect_err "non-finite"
expect_err "at epoch "
expect_err ", batch "
run explode.lua --run-dir skipping --quiet --set on_nonfinite=skip --set max_skips=2
expect_rc 1
expect_out "skipped the update"
expect_err "more than max_skips = 2 skipped updates"
finish
