# The REPL (tkrun repl / tkrun -i): piped scripts of commands checked against independent
# values (a numpy reader of the saved weights, tkrun's own training run, PyTorch's tensor
# printing), and an interactive session under tmux: prompt, line editing, Tab completion,
# Ctrl-C during P:fit, history.
source "$(dirname "$0")/lib.bash"
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
IRIS="$TK_SRC/examples/iris.lua"
BC="$TK_SRC/examples/breast_cancer.lua"

# repl SCRIPT [ARGS...] < commands: stdout in $OUT, stderr in $ERR, exit code in $RC
repl() {
    OUT=$("$TKRUN" repl "$@" 2>"$TK_TMP/stderr") && RC=0 || RC=$?
    ERR=$(cat "$TK_TMP/stderr")
}
# line N of $OUT
line() { sed -n "$1p" <<<"$OUT"; }

# 1. Expressions, multi-line chunks, errors with tracebacks; no prompts when piped; exit 0.
repl "$IRIS" <<'EOF'
=1 + 1, "two"
3 * 7
function twice(a)
  local b = a * 2
  return b
end
print(twice(21))
local t = {
  x = 1,
}
P:param("no.such")
print("still here")
error({})
for i = 1, 2 do
  print("row", i)
end
{a = 1, "b"}
EOF
expect_rc 0
[ "$(line 1)" = $'2\ttwo' ] && [ "$(line 2)" = 21 ] && [ "$(line 3)" = 42 ] && ok ||
    bad "expressions/multi-line: $OUT"
[ "$(line 4)" = "still here" ] && [ "$(line 5)" = $'row\t1' ] && ok ||
    bad "the REPL did not go on after an error: $OUT"
[ "$(line 7)" = '{"b", a = 1}' ] && ok || bad "a table result prints its contents: $(line 7)"
expect_err "no tensor 'no.such' (the model has: 0.weight, 0.bias, 2.weight, 2.bias)"
expect_err "stack traceback:"
expect_err "in method 'param'"
expect_err "(error object is a table value)"
grep -q '^>' <<<"$OUT" && bad "prompts in piped output: $OUT" || ok
"$TKRUN" -i "$IRIS" </dev/null >/dev/null 2>&1 && ok || bad "tkrun -i with empty input failed"

# 2. Tensors: stats against numpy on the saved weights; views, narrow, totable, clone.
repl "$IRIS" <<'EOF'
P:save("w0.safetensors")
w = P.params["0.weight"]
print(string.format("%.7g %.7g %.7g %.7g %.7g %.7g", w:mean(), w:std(), w:min(), w:max(), w:sum(), w:norm()))
print(table.concat(w.shape, "x"), w.dtype, #w, w.ndim)
print(string.format("%.7g %.7g", w[3][2], w:narrow(2, 2, 2)[3][1]))
print(#w:narrow(1, 5, 3), w:narrow(1, 5, 3):totable()[1][1] == w[5][1])
c = w:clone(); P:step(3); print((P.params["0.weight"] - w):norm() == 0, (w - c):norm() > 0)
print(w[-1][1] == w[16][1], #P.grads["2.bias"])
w[1] = 0
EOF
expect_rc 0
want=$(/usr/bin/python3 - <<EOF
import sys; sys.path.insert(0, "$TK_SRC/tests")
from safetensors_reader import read
w = read("w0.safetensors")[0]["0.weight"][1].astype("float64")
print("%.7g %.7g %.7g %.7g %.7g %.7g" % (w.mean(), w.std(ddof=1), w.min(), w.max(), w.sum(),
      (w ** 2).sum() ** 0.5))
print("%.7g %.7g" % (w[2, 1], w[2, 1]))
EOF
)
[ "$(line 1)" = "$(sed -n 1p <<<"$want")" ] && ok ||
    bad "tensor stats '$(line 1)' differ from numpy's '$(sed -n 1p <<<"$want")'"
[ "$(line 2)" = $'16x4\tfloat32\t16\t2' ] && ok || bad "shape/dtype/len: $(line 2)"
[ "$(line 3)" = "$(sed -n 2p <<<"$want")" ] && ok || bad "indexing/narrow: $(line 3) vs $want"
[ "$(line 4)" = $'3\ttrue' ] && ok || bad "narrow/totable: $(line 4)"
[ "$(line 5)" = $'true\ttrue' ] && ok || bad "parameter views are live, clones are not: $(line 5)"
[ "$(line 6)" = $'true\t3' ] && ok || bad "negative index / grads: $(line 6)"
expect_err "tensors are read-only"

# 3. The preview prints what PyTorch 1.13 prints (tests/gen_fixtures_repl.py).
FIX="$TK_SRC/tests/fixtures/repl_print.txt"
repl "$IRIS" < <(sed -n 's/^### \(.*\)$/print("### " .. [==[\1]==]); print(\1)/p' "$FIX")
[ "$OUT" = "$(cat "$FIX")" ] && ok ||
    bad "tensor previews differ from PyTorch's: $(diff <(echo "$OUT") "$FIX")"

# 4. P:fit / P:step continue one run: equal, bit for bit, to tkrun's own training run.
"$TKRUN" "$BC" --epochs 3 --run-dir bc --quiet >/dev/null || bad "training run failed"
repl "$BC" --epochs 3 <<'EOF'
l0 = P:evaluate("train").loss
s, k = P:step(10)
print(type(s), P:evaluate("train").loss < l0, P:state().step, P:state().batch, k)
r = P:fit{epochs = 3, quiet = true}
print(P:state().epoch, P:state().step, type(r.train.loss), type(r.valid.accuracy))
P:save("fit.safetensors")
e = P:evaluate("valid")
print(string.format("%.6f %.4f %d", e.loss, e.accuracy, e.samples))
EOF
expect_rc 0
[ "$(line 1)" = $'number\ttrue\t10\t10\t10' ] && ok || bad "P:step: $(line 1)"
[ "$(line 2)" = $'3\t39\tnumber\tnumber' ] && ok || bad "P:fit: $(line 2)"
cmp -s fit.safetensors bc/checkpoints/final.safetensors && ok ||
    bad "P:step(10) + P:fit{epochs = 3} differs from tkrun --epochs 3"
valid_loss=$(awk -F, '$1 == 3 && $3 == "valid" { printf "%.6f", $4 }' bc/metrics.csv)
[ "$(line 3 | cut -d' ' -f1)" = "$valid_loss" ] && [ "$(line 3 | cut -d' ' -f3)" = 57 ] && ok ||
    bad "P:evaluate('valid') '$(line 3)' is not the run's valid loss $valid_loss"

#    With class weights the losses are weighted means, as tkrun's training computes them.
cat > bcw.lua <<EOF
local t = dofile("$BC")
t.loss = tk.loss.cross_entropy { weight = { 1, 3 } }
return t
EOF
"$TKRUN" bcw.lua --epochs 2 --run-dir bcw --quiet >/dev/null || bad "weighted training run failed"
repl bcw.lua --epochs 2 <<'EOF'
r = P:fit{epochs = 2, quiet = true}
P:save("bcw.safetensors")
print(string.format("%.6f %.6f", r.train.loss, P:evaluate("valid").loss))
EOF
cmp -s bcw.safetensors bcw/checkpoints/final.safetensors && ok ||
    bad "P:fit with class weights differs from tkrun"
want=$(awk -F, '$1 == 2 && ($3 == "train" || $3 == "valid") { printf "%s%.6f", sep, $4; sep = " " }' \
    bcw/metrics.csv)
[ "$OUT" = "$want" ] && ok || bad "weighted train/valid loss '$OUT', the run's '$want'"

# 5. lr: SGD's update is exactly lr * grad, at the lr set live (both ways); the schedule back.
cat > sgd.lua <<EOF
local t = dofile("$IRIS")
t.optimizer = tk.optim.sgd { lr = 0.1 }
return t
EOF
repl sgd.lua <<'EOF'
function moved(lr)
  local w = P.params["2.weight"]:clone()
  P:step(1)
  return ((w - P.params["2.weight"]) - P.grads["2.weight"] * lr):norm() < 1e-6
end
print(P:lr(0), moved(0.1))
P:set_lr(0, 0.5)
print(P:lr(0), opt.groups[1].lr, moved(0.5))
opt.groups[1].lr = 0
w = P.params["2.weight"]:clone(); P:step(2); print((w - P.params["2.weight"]):norm() == 0)
P:set_lr(0, nil)
print(P:lr()[1], moved(0.1))
P:set_lr(3, 0.1)
opt.groups[1].momentum = 0.9
P:set_lr(0, 0/0)
EOF
expect_rc 0
[ "$OUT" = $'0.1\ttrue\n0.5\t0.5\ttrue\ntrue\n0.1\ttrue' ] && ok || bad "live lr: $OUT"
expect_err "no parameter group 3 (the groups are 0 to 0)"
expect_err "only lr changes live"
expect_err "lr is NaN (nil puts the group back on the schedule)"

# 6. Weights: save, train, load gives the saved bytes back; a wrong file is refused.
repl "$IRIS" <<'EOF'
P:save("a.safetensors")
s = P:step(5)
P:save("b.safetensors")
print(P:load("a.safetensors"))
P:save("c.safetensors")
P:load("missing.safetensors")
P:load("bc/checkpoints/final.safetensors")
EOF
expect_rc 0
[ "$(line 1)" = a.safetensors ] && ok || bad "P:load returns the file it read: $OUT"
cmp -s a.safetensors c.safetensors && ok || bad "save/load round trip not byte-identical"
cmp -s a.safetensors b.safetensors && bad "P:step(5) did not change the weights" || ok
expect_err "missing.safetensors: no such file"
expect_err "bc/checkpoints/final.safetensors: strict"

# 7. Batches, forward, predict: agree with evaluate; shape errors name the shapes.
repl "$IRIS" <<'EOF'
r = P:fit{epochs = 5, quiet = true}
x, y = P:batch("valid", 1)
out, loss = P:forward(x, y)
e = P:evaluate("valid")
ids, probs = P:predict(x)
right = 0
for i = 1, #y do if ids[i] == y[i] then right = right + 1 end end
print(table.concat(x.shape, "x"), table.concat(out.shape, "x"), y.dtype, ids.dtype)
print(math.abs(loss - e.loss) < 1e-6, right / #y == e.accuracy, math.abs(probs[1]:sum() - 1) < 1e-6)
print(#P:forward(tensor{{0, 0, 0, 0}}), P:forward(tensor{{0, 0, 0, 0}}):argmax()[1] == P:predict(tensor{{0, 0, 0, 0}})[1])
print(data.valid.size, data.train.batches, model.layers[1].type, opt.kind, tostring(model):match("^layer") ~= nil)
print(table.concat(select(2, P:predict(x:narrow(1, 1, 0))).shape, "x"), P:forward(x:narrow(1, 1, 0)))
P:forward(tensor{{1, 2, 3}})
P:batch("valid", 2)
P.step(1)
EOF
expect_rc 0
[ "$(line 1)" = $'15x4\t15x3\tint64\tint64' ] && ok || bad "batch/forward shapes: $(line 1)"
[ "$(line 2)" = $'true\ttrue\ttrue' ] && ok || bad "forward/predict vs evaluate: $(line 2)"
[ "$(line 3)" = $'1\ttrue' ] && ok || bad "forward/predict of a hand-made tensor: $(line 3)"
[ "$(line 4)" = $'15\t7\tlinear\tadam\ttrue' ] && ok || bad "data/model/opt: $(line 4)"
[ "$(line 5)" = $'0x3\ttensor([], size=(0, 3))' ] && ok || bad "zero rows: $(line 5)"
expect_err "x has shape (1, 3) but the model takes (N, 4): N samples first"
expect_err "batch 2 out of range: the split has 1 batches (1 to 1)"
expect_err "call it as a method: P:step(...)"

#    Raw rows of the CSV, transformed as the training batches were, are classified well.
repl "$IRIS" <<'EOF'
r = P:fit{epochs = 20, quiet = true}
rows, labels = {}, {}
for l in io.lines("/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv") do
  local v = {}
  for f in l:gmatch("[^,]+") do v[#v + 1] = tonumber(f) end
  if skipped then rows[#rows + 1] = {v[1], v[2], v[3], v[4]}; labels[#rows] = v[5] end
  skipped = true
end
raw, norm = P:predict(tensor(rows)), P:predict(P:transform(tensor(rows)))
right, right_raw = 0, 0
for i = 1, #rows do
  right = right + (norm[i] == labels[i] and 1 or 0)
  right_raw = right_raw + (raw[i] == labels[i] and 1 or 0)
end
print(#rows, right / #rows >= 0.9, right_raw < right)
EOF
[ "$OUT" = $'150\ttrue\ttrue' ] && ok || bad "P:transform of raw CSV rows: $OUT $ERR"

#    Regression: float targets, outputs from predict, mae/rmse/r2 from evaluate.
/usr/bin/python3 - <<'PY'
import random
random.seed(5)
with open("lin.csv", "w") as f:
    f.write("a,b,y1,y2\n")
    for i in range(200):
        a, b = random.uniform(-1, 1), random.uniform(-1, 1)
        f.write(f"{a:.5f},{b:.5f},{2 * a - b:.5f},{a + 0.5:.5f}\n")
PY
cat > reg.lua <<'LUA'
return tk.pipeline {
  seed = 3,
  data = { train = tk.data.csv { path = "lin.csv", header = true, label = { "y1", "y2" } },
           valid = tk.data.split { from = "train", fraction = 0.2 }, batch_size = 16 },
  model = tk.nn.sequential { tk.nn.linear(2) },
  loss = tk.loss.mse {},
  optimizer = tk.optim.adam { lr = 0.05 },
  metrics = { "r2" },
}
LUA
repl reg.lua <<'EOF'
x, y = P:batch("train", 2)
e0 = P:evaluate()
r = P:fit{epochs = 30, quiet = true}
e = P:evaluate()
print(table.concat(y.shape, "x"), y.dtype, table.concat(P:predict(x).shape, "x"))
print(((P:predict(x) - P:forward(x)):norm()), e.r2 > 0.99, e.r2 > e0.r2, e.rmse < e0.rmse, e.mae < e.rmse + 1e-9)
print(math.abs(select(2, P:forward(x, y)) - ((P:forward(x) - y) * (P:forward(x) - y)):mean()) < 1e-6)
EOF
[ "$OUT" = $'16x2\tfloat32\t16x2\n0.0\ttrue\ttrue\ttrue\ttrue\ntrue' ] && ok ||
    bad "regression in the REPL: $OUT $ERR"

# 8. Interactive, under tmux: prompt, a line edit, Tab completion, Ctrl-C in P:fit, history.
S="tkrun-repl-test-$$"
screen() {
    tmux capture-pane -p -t "$S" -S -200
    tmux display-message -p -t "$S" '#{?pane_dead,pane dead: status #{pane_dead_status} signal #{pane_dead_signal},}'
}
# wait_for [-x] TEXT: up to 10 s for TEXT on the screen (-x: a line that is exactly TEXT), less
# if the pane's command has ended
wait_for() {
    local how=-qF text
    [ "$1" = -x ] && how=-qxF && shift
    for _ in $(seq 100); do
        text=$(screen)
        grep $how -- "$1" <<<"$text" && return 0
        grep -q '^pane dead:' <<<"$text" && return 1
        sleep 0.1
    done
    return 1
}
tmux -f /dev/null new-session -d -s "$S" -x 120 -y 50 \
    "cd '$TK_TMP' && TKRUN_HISTORY='$TK_TMP/history' '$TKRUN' -i '$IRIS'; echo \"exit=\$?\"; sleep 60" \; \
    set-option remain-on-exit on
wait_for "help() shows what it can do" && screen | grep -q '^>' && ok || bad "no prompt: $(screen)"
tmux send-keys -t "$S" '=10 * 4' Left Left Left BSpace 2 Enter
wait_for "408" && ok || bad "line editing (=10 * 4 -> =102* 4): $(screen)"
#    Ctrl-C right after typing, with the next line on its way, 30 times: each drops the line
#    and nothing else (libedit's own handlers, on before, ended the REPL now and then).
dropped=yes
for i in $(seq 30); do
    tmux send-keys -t "$S" '1 +' C-c
    tmux send-keys -t "$S" "=$i * 1001" Enter
    wait_for -x "$((i * 1001))" || { dropped=no; break; }
done
[ "$dropped" = yes ] && ok || bad "Ctrl-C at the prompt did not drop the line ($i of 30): $(screen)"
tmux send-keys -t "$S" 'P:eva' Tab
wait_for "> P:evaluate" && ok || bad "Tab did not complete P:eva: $(screen)"
tmux send-keys -t "$S" C-u 'tk.nn.li' Tab
wait_for "> tk.nn.linear" && ok || bad "Tab did not complete tk.nn.li: $(screen)"
tmux send-keys -t "$S" C-u 'model.out' Tab
wait_for "> model.output_shape" && ok || bad "Tab did not complete model.out: $(screen)"
tmux send-keys -t "$S" C-u 'P:fit{epochs = 1000000, quiet = true}' Enter
sleep 1
tmux send-keys -t "$S" C-c
wait_for "interrupted at epoch" && ok || bad "Ctrl-C did not stop P:fit: $(screen)"
tmux send-keys -t "$S" '=P:state().step > 0 and "back at the prompt"' Enter
wait_for "back at the prompt" && ok || bad "no prompt after Ctrl-C: $(screen)"
tmux send-keys -t "$S" C-l
cleared=no
for _ in $(seq 100); do
    tmux clear-history -t "$S"
    screen | grep -q "interrupted at" || { cleared=yes; break; }
    sleep 0.1
done
[ "$cleared" = yes ] || bad "the screen was not cleared: $(screen)"
tmux send-keys -t "$S" 'P:fit{epochs = 1000000}' Enter
sleep 1
tmux send-keys -t "$S" C-c
wait_for "interrupted at epoch" && ok || bad "Ctrl-C did not stop P:fit with its epoch lines: $(screen)"
tmux send-keys -t "$S" '=P:state().step > 100 and "back again"' Enter
wait_for "back again" && ok || bad "no prompt after the second Ctrl-C: $(screen)"
tmux send-keys -t "$S" 'while true do end' Enter
sleep 0.5
tmux send-keys -t "$S" C-c
wait_for "interrupted!" && ok || bad "Ctrl-C did not stop a Lua loop: $(screen)"
tmux send-keys -t "$S" C-d
wait_for "exit=0" && ok || bad "Ctrl-D did not exit with 0: $(screen)"
tmux kill-session -t "$S" 2>/dev/null
grep -q "P:fit" "$TK_TMP/history" && ok || bad "the history file lacks the commands"

finish
