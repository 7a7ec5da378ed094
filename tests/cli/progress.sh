# The progress bar: under a pseudo-terminal (script(1)) training draws tqdm's format on stderr,
# at most 10 times a second, and clears it into the epoch lines; off a terminal, or with
# --quiet, there is no bar at all.
source "$(dirname "$0")/lib.bash"
/usr/bin/python3 - <<'PY'
import random
random.seed(3)
with open("pts.csv", "w") as f:
    for i in range(3000):
        a, b = random.uniform(-1, 1), random.uniform(-1, 1)
        f.write(f"{a:.4f},{b:.4f},{int(a + b > 0)}\n")
PY
cat > pts.lua <<'LUA'
return tk.pipeline {
  seed = 1,
  data = { train = tk.data.csv { path = "pts.csv" },
           valid = tk.data.split { from = "train", fraction = 0.1 }, batch_size = 1 },
  model = tk.nn.sequential { tk.nn.linear(8), tk.nn.relu(), tk.nn.linear(2) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.05 },
  epochs = 2,
}
LUA
# tty_run OUTFILE ARGS...: tkrun under a pseudo-terminal, everything it wrote in OUTFILE
tty_run() {
    local out=$1; shift
    script -qfec "$(printf '%q ' "$TKRUN" "$@")" /dev/null >"$out" </dev/null
}
tty_run tty.txt pts.lua --run-dir r1
grep -qaE $'epoch 1/2 +[0-9]{1,3}%\|[ █▏▎▍▌▋▊▉]+\| [0-9]+/2700 \[[0-9]{2}:[0-9]{2}<[0-9]{2}:[0-9]{2}, [0-9.]+it/s, loss=[0-9.e+-]+, accuracy=[0-9.]+\]' tty.txt &&
    ok || bad "no tqdm-style bar: $(head -c 600 tty.txt | cat -v)"
grep -qaE $'\r\033\\[Kepoch 2/2  train loss [0-9.]+ accuracy [0-9.]+  \\([0-9.]+ s' tty.txt &&
    ok || bad "the bar is not cleared into the epoch line: $(tail -c 600 tty.txt | cat -v)"
grep -qa "100%|██████████| 2700/2700" tty.txt && ok || bad "no full bar at the end of the epoch"
# <= 10 draws a second (plus the first and the last): 2700 batches would be 2700 draws.
draws=$(grep -ao $'\repoch 1/2 ' tty.txt | wc -l)
secs=$(sed -n 's/.*epoch 1\/2  train loss .*(\([0-9.]*\) s.*/\1/p' tty.txt | head -1)
awk -v d="$draws" -v s="$secs" 'BEGIN { exit !(d >= 2 && d <= 10 * s + 3) }' && ok ||
    bad "$draws draws in $secs s"
# The bar goes to stderr: with stdout elsewhere it is still drawn, with stderr elsewhere it is not.
script -qfec "$(printf '%q ' "$TKRUN" pts.lua --run-dir r2) >/dev/null" /dev/null >tty2.txt </dev/null
grep -qa "%|" tty2.txt && ok || bad "no bar on a terminal stderr"
script -qfec "$(printf '%q ' "$TKRUN" pts.lua --run-dir r3) 2>/dev/null" /dev/null >tty3.txt </dev/null
grep -qa "%|" tty3.txt && bad "a bar although stderr is not a terminal" || ok
grep -qa "epoch 2/2  train loss" tty3.txt && ok || bad "no epoch line: $(cat -v tty3.txt | head -5)"
# --quiet on a terminal: no bar.
tty_run tty4.txt pts.lua --run-dir r4 --quiet
grep -qa "%|" tty4.txt && bad "--quiet drew a bar" || ok
# Off a terminal: the epoch lines only, no bar and no carriage return anywhere.
run pts.lua --run-dir r5
expect_rc 0
expect_out "epoch 1/2  train loss"
expect_out "epoch 2/2  train loss"
grep -q $'\r' <<<"$OUT$ERR" && bad "carriage return off a terminal" || ok
grep -q "%|" <<<"$OUT$ERR" && bad "a bar off a terminal" || ok
finish
