# Regression end to end: two float targets from a CSV (label = list of columns), mse loss,
# the mae/rmse/r2 metrics in metrics.csv and the logs, an empty accuracy column, and the
# per-output report of the test split.
source "$(dirname "$0")/lib.bash"
/usr/bin/python3 - <<'PY'
import random
random.seed(11)
with open("lin.csv", "w") as f:
    f.write("a,b,c,y1,y2\n")
    for i in range(400):
        a, b, c = (random.uniform(-1, 1) for _ in range(3))
        f.write(f"{a:.5f},{b:.5f},{c:.5f},{2*a - b + 0.5:.5f},{a*b + c:.5f}\n")
PY
cat > reg.lua <<'LUA'
return tk.pipeline {
  seed = 3,
  data = { train = tk.data.csv { path = "lin.csv", header = true, label = { "y1", "y2" } },
           valid = tk.data.split { from = "train", fraction = 0.2 },
           test = tk.data.split { from = "train", fraction = 0.2 }, batch_size = 16 },
  model = tk.nn.sequential { tk.nn.linear(32), tk.nn.tanh(), tk.nn.linear(2) },
  loss = tk.loss.mse {},
  optimizer = tk.optim.adam { lr = 0.01 },
  metrics = { "mae", "rmse", "r2" },
  epochs = 40,
}
LUA
run reg.lua --run-dir reg --quiet
expect_rc 0
[ "$(head -1 reg/metrics.csv)" = "epoch,step,split,loss,accuracy,mae,rmse,r2,lr,seconds" ] && ok ||
    bad "header: $(head -1 reg/metrics.csv)"
test_row=$(grep ',test,' reg/metrics.csv)
[ "$(cut -d, -f5 <<<"$test_row")" = "" ] && ok || bad "accuracy should be empty: $test_row"
expect_ge "$(cut -d, -f8 <<<"$test_row")" 0.9 "test r2"
grep -q " r2 " reg/valid.log && ok || bad "valid.log lacks r2"
expect_out "test: loss"
grep -q "r2" reg/test_report.txt && ok || bad "test_report.txt lacks the regression table"
finish
