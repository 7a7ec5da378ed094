# Defaults live in the stdlib alone: the optimizer options C receives are the stdlib's,
# resolved per group (adagrad's eps is 1e-10, PyTorch's, where C once said 1e-8), and
# --set reaches them by name. Schedule options are checked by `tkrun check` too.
source "$(dirname "$0")/lib.bash"

sed 's/optimizer = [^,]*{[^}]*}/optimizer = tk.optim.adagrad { lr = 0.1, groups = { { match = "*.bias", lr = 0.5 } } }/' \
    "$TK_SRC/examples/iris.lua" > ada.lua
run check ada.lua
expect_rc 0
expect_out "optimizer adagrad"
[ "$(grep -c 'lr_decay=0 eps=1e-10 initial_accumulator_value=0' <<<"$OUT")" = 2 ] && ok ||
    bad "both groups should carry adagrad's eps 1e-10: $OUT"
grep -q '^1 .*0\.5 ' <<<"$OUT" && ok || bad "group 1 lost its own lr: $OUT"

run check ada.lua --set optimizer.eps=1e-6 --set optimizer.initial_accumulator_value=0.25
expect_rc 0
[ "$(grep -c 'eps=1e-06 initial_accumulator_value=0.25' <<<"$OUT")" = 2 ] && ok ||
    bad "--set optimizer.eps did not reach both groups: $OUT"

# A schedule option the stdlib cannot judge (it needs the run's length) is found by check,
# with the script line.
sed 's/^  epochs = /  schedule = tk.sched.cosine { warmup_steps = 100000 },\n  epochs = /' \
    "$TK_SRC/examples/iris.lua" > cos.lua
run check cos.lua
expect_rc 2
expect_err "cos.lua:22: sched.cosine: T_max defaults to total_steps - warmup_steps = 420 - 100000, which leaves no steps"
finish
