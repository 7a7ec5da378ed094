# Script mistakes are found before any batch, name the user's line, and exit 2.
source "$(dirname "$0")/lib.bash"

cat > width.lua <<'LUA'
return tk.pipeline {
  data = { train = tk.data.csv { path = "d.csv" }, batch_size = 4 },
  model = tk.nn.sequential {
    tk.nn.linear(8), tk.nn.relu(),
    tk.nn.linear { in_features = 5, out_features = 3 },
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
}
LUA
printf '1,2,3,0\n4,5,6,1\n7,8,9,2\n1,1,1,0\n' > d.csv
run check width.lua
expect_rc 2
expect_err "width.lua:5: layer '2' (linear): input of shape (4, 8) does not fit in_features=5 (weight shape (3, 5))"
[ -z "$(ls runs 2>/dev/null)" ] && ok || bad "check wrote a run directory"

sed 's/lr = 0.1/learing_rate = 0.1/' width.lua > typo.lua
run check typo.lua
expect_rc 2
expect_err "typo.lua:8:"
expect_err "unknown key 'learing_rate' (did you mean 'lr'?)"

cat > labels.lua <<'LUA'
return tk.pipeline {
  data = { train = tk.data.csv { path = "d.csv" }, batch_size = 4 },
  model = tk.nn.linear(2),
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
}
LUA
run check labels.lua
expect_rc 2
expect_err "label 2 out of range for 2 classes (d.csv row 3)"

printf '1,2,3,0\n4,x,6,1\n' > bad.csv
sed 's/d.csv/bad.csv/' labels.lua > badcsv.lua
run check badcsv.lua
expect_rc 2
expect_err "bad.csv:2: column 2: 'x' is not a number"

run check width.lua --set optimizer.lr=abc
expect_rc 2
expect_err "optimizer.lr"

run check nothere.lua
expect_rc 2
expect_err "nothere.lua"

run --bogus width.lua
expect_rc 2
expect_err "unknown option '--bogus'"
finish
