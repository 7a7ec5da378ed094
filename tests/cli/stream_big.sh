# stream_big.sh - a CSV bigger than memory should need: a generated 2 GiB file
# (tests/gen_big_csv.c: 4 features, a class label, a 160-letter note column the script leaves
# out) trains one shuffled epoch with data.csv{stream = true} in bounded memory. Peak RSS
# (/usr/bin/time %M) must stay under 300 MiB; the load pass must count every row; the model
# must learn the labels. Prints the RSS, wall time and train.log's data-wait %. The file is
# removed afterwards.
source "$(dirname "$0")/lib.bash"
trap 'rm -f "$TK_TMP/big.csv"' EXIT
start=$(date +%s.%N)
rows=$("$TK_GEN_CSV" big.csv $((2 * 1024 * 1024 * 1024)) 160)
[ "$(stat -c %s big.csv)" -ge $((2 * 1024 * 1024 * 1024)) ] && ok || bad "big.csv is short"
cat >big.lua <<'LUA'
local nn, data = tk.nn, tk.data
return tk.pipeline {
  name = "big", seed = 1,
  data = {
    train = data.csv { path = "big.csv", header = true, features = {"f1", "f2", "f3", "f4"},
                       label = "label", stream = true },
    batch_size = 1024, shuffle = true,
  },
  model = nn.sequential { nn.linear(16), nn.relu(), nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 1e-2 },
  epochs = 1,
}
LUA
t0=$(date +%s.%N)
OUT=$(/usr/bin/time -f %M -o rss.txt "$TKRUN" big.lua --run-dir run --quiet 2>stderr) && RC=0 || RC=$?
ERR=$(cat stderr)
t1=$(date +%s.%N)
expect_rc 0
rss=$(tail -1 rss.txt)
[ "$rss" -lt $((300 * 1024)) ] && ok || bad "peak RSS $rss KiB >= 300 MiB"
grep -qE "^train +$rows samples" run/note.log && ok || bad "note.log does not count $rows rows"
acc=$(sed -n 's/.* accuracy \([0-9.]*\) .*/\1/p' run/train.log)
expect_ge "$acc" 0.9 "train accuracy"
echo "2 GiB, $rows rows: peak RSS $((rss / 1024)) MiB, training $(echo "$t1 - $t0" | bc) s," \
    "whole test $(echo "$t1 - $start" | bc) s; $(grep -o 'data-wait [0-9.]*%' run/train.log)"
finish
