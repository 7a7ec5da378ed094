# A multi-label task end to end: bce_with_logits trains on a CSV with three yes/no label
# columns, and everything reads the task from the loss: accuracy per label in metrics.csv,
# exact_match, eval's report, predict's probabilities, and metrics of other tasks refused.
source "$(dirname "$0")/lib.bash"

# Label k is yes when feature k is positive; feature 4 is noise.
awk 'BEGIN { srand(7); print "x1,x2,x3,x4,a,b,c";
  for (i = 0; i < 400; i++) { s = ""; l = "";
    for (k = 1; k <= 4; k++) { v[k] = rand() * 2 - 1; s = s (k > 1 ? "," : "") sprintf("%.4f", v[k]) }
    for (k = 1; k <= 3; k++) l = l "," (v[k] > 0 ? 1 : 0);
    print s l } }' > ml.csv
cat > ml.lua <<'LUA'
return tk.pipeline {
  name = "ml", seed = 3,
  data = {
    train = tk.data.csv { path = "ml.csv", header = true, label = {"a", "b", "c"} },
    valid = tk.data.split(0.25),
    batch_size = 16,
  },
  model = tk.nn.sequential { tk.nn.linear(4, 16), tk.nn.relu(), tk.nn.linear(16, 3) },
  loss = tk.loss.bce_with_logits(),
  optimizer = tk.optim.adam { lr = 0.02 },
  epochs = 25,
  metrics = {"accuracy", "exact_match"},
  save = { best = "valid.exact_match" },
}
LUA

run ml.lua --run-dir run --threads 1
expect_rc 0
[ "$(head -1 run/metrics.csv)" = "epoch,step,split,loss,accuracy,exact_match,lr,seconds" ] && ok ||
    bad "metrics.csv header: $(head -1 run/metrics.csv)"
last_valid=$(grep ',valid,' run/metrics.csv | tail -1)
expect_ge "$(cut -d, -f5 <<<"$last_valid")" 0.9 "valid per-label accuracy"
expect_ge "$(cut -d, -f6 <<<"$last_valid")" 0.75 "valid exact_match"
[ -s run/checkpoints/best.safetensors ] && ok || bad "save.best on valid.exact_match wrote no best.safetensors"

run eval ml.lua --weights run --split valid
expect_rc 0
expect_out "accuracy"
expect_out "exact_match"
expect_out "labels 3, samples 100"

printf 'x1,x2,x3,x4\n0.9,-0.9,0.9,0\n' > one.csv
run predict ml.lua --weights run --json one.csv
expect_rc 0
expect_out '"probabilities": ['
# The first and third label are yes, the second no.
probs=$(sed -n 's/.*"probabilities": \[\([^]]*\)\].*/\1/p' <<<"$OUT" | tr -d ' ')
IFS=, read -r p1 p2 p3 <<<"$probs"
expect_ge "$p1" 0.5 "label a probability"
expect_ge "$p3" 0.5 "label c probability"
expect_ge "$(awk -v p="$p2" 'BEGIN { print 1 - p }')" 0.5 "label b probability below 0.5"

sed 's/metrics = {"accuracy", "exact_match"}/metrics = {"f1"}/; s/valid.exact_match/valid.loss/' ml.lua > f1.lua
run check f1.lua
expect_rc 2
expect_err "metric 'f1' needs a classification loss; loss.bce_with_logits is a multilabel loss"

sed 's/tk.loss.bce_with_logits()/tk.loss.mse()/; s/"accuracy", "exact_match"/"exact_match"/; s/valid.exact_match/valid.loss/' ml.lua > reg.lua
run check reg.lua
expect_rc 2
expect_err "metric 'exact_match' needs a multilabel loss"
finish
