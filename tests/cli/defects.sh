# Regression cases of the bad-input audit (issue 14): each input once crashed, lost data,
# hung, passed for a success or named the wrong thing. Every case asserts the exit code and
# the message, and that a refused run wrote nothing.
source "$(dirname "$0")/lib.bash"

cat > base.lua <<'LUA'
return tk.pipeline {
  data = { train = tk.data.csv { path = "d.csv" }, batch_size = 2 },
  model = tk.nn.sequential { tk.nn.linear(4), tk.nn.relu(), tk.nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
  epochs = 2,
}
LUA
printf '1,2,3,0\n4,5,6,1\n7,8,9,2\n1,1,1,0\n' > d.csv

# 1. A script that returns no pipeline: exit 2 with one message, never a Lua panic.
: > empty.lua
echo 'local x = 1' > nothing.lua
echo 'return 5' > number.lua
echo 'return { _kind = "pipeline" }' > lookalike.lua
for s in /dev/null empty.lua nothing.lua number.lua lookalike.lua; do
    run check "$s"
    expect_rc 2
    expect_err "$s: must return tk.pipeline{...}"
    run "$s" --run-dir "never_$(basename "$s")"
    expect_rc 2
    [ ! -e "never_$(basename "$s")" ] && ok || bad "$s: a run directory was made"
done
# A script that reassigns the global tk still hands its pipeline over (no panic).
printf 'local p = dofile("base.lua")\ntk = nil\nreturn p\n' > global.lua
run check global.lua --set epochs=3
expect_rc 0
echo 'error({ code = 3 })' > errtable.lua
run check errtable.lua
expect_rc 2
expect_err "errtable.lua:1: error object {code = 3}"
echo 'error(setmetatable({}, { __tostring = function() return "custom text" end }))' > errmeta.lua
run check errmeta.lua
expect_rc 2
expect_err "errmeta.lua:1: custom text"
printf -- '-- no options\n\nreturn tk.pipeline()\n' > noargs.lua
run check noargs.lua
expect_rc 2
expect_err "noargs.lua:3: pipeline: expects a table of options, got nil"

# 2. Any number of --epochs and --set options (65 used to overflow a 64-slot array).
args=()
for i in $(seq 1 100); do args+=(--epochs 1 --set seed=$i); done
run check base.lua "${args[@]}"
expect_rc 0

# 9. A mistyped command is named as one.
run trian base.lua
expect_rc 2
expect_err "unknown command 'trian' (did you mean 'train'?)"

# 3. An existing run directory is refused, never mixed; --run-dir that cannot be made is 2.
run base.lua --run-dir first --quiet
expect_rc 0
sum=$(cat first/note.log first/train.log first/checkpoints/* | md5sum)
run base.lua --run-dir first --quiet
expect_rc 2
expect_err "--run-dir first: already exists and is not empty"
expect_err "--resume first"
[ "$(cat first/note.log first/train.log first/checkpoints/* | md5sum)" = "$sum" ] && ok ||
    bad "a refused --run-dir changed the existing run"
mkdir emptydir
run base.lua --run-dir emptydir --quiet
expect_rc 0
[ -s emptydir/checkpoints/last.safetensors ] && ok || bad "an empty --run-dir was not used"
touch afile
run base.lua --run-dir afile --quiet
expect_rc 2
expect_err "--run-dir afile: exists and is not a directory"
run base.lua --run-dir afile/run --quiet
expect_rc 2
expect_err "--run-dir afile/run: cannot create directory 'afile/run': Not a directory"
if [ "$(id -u)" = 0 ]; then
    # root writes through permissions: /sys refuses new directories to anyone
    run base.lua --run-dir /sys/tkrun-defects-test --quiet
    expect_rc 2
    expect_err "--run-dir /sys/tkrun-defects-test: cannot create directory"
else
    mkdir ro && chmod 555 ro
    run base.lua --run-dir ro/run --quiet
    expect_rc 2
    expect_err "--run-dir ro/run: cannot create directory 'ro/run': Permission denied"
fi

# 6. A refused --resume writes nothing; a failed --init leaves no run directory.
cp first/checkpoints/last.safetensors good.safetensors
printf 'garbage' > first/checkpoints/last.safetensors
rm first/checkpoints/final.safetensors
sum=$(cat first/note.log first/train.log | md5sum)
run base.lua --resume first --quiet
expect_rc 2
[ "$(cat first/note.log first/train.log | md5sum)" = "$sum" ] && ok ||
    bad "a refused --resume appended to the run's logs"
[ "$(ls first/checkpoints)" = "last.safetensors" ] && ok || bad "a refused --resume wrote checkpoints"
mkdir loose
printf 'xx' > loose/ck.safetensors
run base.lua --resume loose/ck.safetensors --quiet
expect_rc 2
[ "$(ls loose)" = "ck.safetensors" ] && ok || bad "a refused --resume FILE wrote beside it: $(ls loose)"
cp good.safetensors first/checkpoints/last.safetensors
run base.lua --resume first --epochs 3 --quiet
expect_rc 0
expect_out "resumed from first/checkpoints/last.safetensors"
[ "$(grep -c 'started' first/note.log)" = 2 ] && ok || bad "a resumed run did not note its start"
printf 'bad' > bad.safetensors
run base.lua --init bad.safetensors --run-dir init_run --quiet
expect_rc 2
[ ! -e init_run ] && ok || bad "a failed --init left its run directory"
rm -rf runs
run base.lua --init bad.safetensors --quiet
expect_rc 2
[ ! -e runs ] && ok || bad "a failed --init left runs/ behind"

# 7. check reads the init weights as training would.
run check base.lua --init bad.safetensors
expect_rc 2
expect_err "bad.safetensors: file is 3 bytes"
sed 's/epochs = 2,/epochs = 2, init = "bad.safetensors",/' base.lua > init_script.lua
run check init_script.lua
expect_rc 2
expect_err "bad.safetensors: file is 3 bytes"
run check base.lua --init good.safetensors
expect_rc 0
expect_out "4 loaded, 0 missing"

# 5. Skipping non-finite updates is bounded by default, and a run that skipped every update
# is no success. Features near FLT_MAX make every loss non-finite.
printf '3e38,3e38,3e38,0\n3e38,3e38,3e38,1\n3e38,3e38,3e38,2\n3e38,3e38,3e38,0\n' > inf.csv
sed 's/d.csv/inf.csv/; s/epochs = 2,/epochs = 30, on_nonfinite = "skip",/' base.lua > skip.lua
run skip.lua --run-dir skip_run --quiet
expect_rc 1
expect_err "non-finite loss at epoch 6, step 1, batch 1: more than max_skips = 10 skipped updates"
[ ! -e skip_run/checkpoints/final.safetensors ] && ok || bad "a failed skipping run wrote final weights"
run skip.lua --run-dir skip_short --quiet --epochs 2
expect_rc 1
expect_err "every update of 2 epochs was skipped (4 non-finite losses or gradients)"
run check skip.lua --set on_nonfinite=stop
expect_rc 0

# 8. Input that used to be accepted without a word.
printf '1,2,3,0\n4,5\0006,6,1\n' > nul.csv
sed 's/d.csv/nul.csv/' base.lua > nul.lua
run check nul.lua
expect_rc 2
expect_err "nul.csv:2: column 2: a NUL byte inside the cell"
sed 's/lr = 0.1 }/lr = 0.1, groups = { { match = "*.weight", lr = 0.01 }, { match = "2.*" } } }/' \
    base.lua > overlap.lua  # the first match wins (DESIGN.md), and says so
run check overlap.lua
expect_rc 0
expect_out "note: parameter '2.weight' matches optimizer group 1 (match '*.weight') and group 2 (match '2.*'): group 1 applies (the first match wins)"
run overlap.lua --run-dir overlap_run --quiet
expect_rc 0
expect_out "note: parameter '2.weight' matches optimizer group 1"
grep -qF "note: parameter '2.weight' matches optimizer group 1" overlap_run/note.log && ok ||
    bad "note.log does not list the overlap"
sed 's/epochs = 2,/epochs = 2, metrics = { "accuracy", "top5" },/' base.lua > top5.lua
run check top5.lua
expect_rc 2
expect_err "metrics: 'top5' needs at least 5 classes, and there are 3"
sed 's/lr = 0.1 }/lr = 0.1, freeze = { "0.*", "2.*" } }/' base.lua > frozen.lua
run check frozen.lua
expect_rc 2
expect_err "frozen.lua:5: freeze covers every parameter"
sed 's/lr = 0.1 }/lr = 0.1, freeze = { "0.*" } }/' base.lua > half_frozen.lua
run check half_frozen.lua
expect_rc 0

# 9. Messages name the right file.
/usr/bin/python3 - <<'PY'
import struct
with open("images.idx", "wb") as f:
    f.write(struct.pack(">IIII", 0x00000803, 4, 2, 2) + bytes(range(16)))
with open("labels.idx", "wb") as f:
    f.write(struct.pack(">II", 0x00000801, 4) + bytes([0, 1, 7, 2]))
PY
cat > idx.lua <<'LUA'
return tk.pipeline {
  data = { train = tk.data.idx { images = "images.idx", labels = "labels.idx" }, batch_size = 2 },
  model = tk.nn.sequential { tk.nn.flatten(), tk.nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
}
LUA
run check idx.lua
expect_rc 2
expect_err "label 7 out of range for 3 classes (labels.idx record 3)"
cat > keys.lua <<'LUA'
return tk.pipeline {
  data = {
    train = tk.data.csv { path = "d.csv" },
    batch_size = 0,
  },
  model = tk.nn.sequential { tk.nn.linear(4), tk.nn.relu(), tk.nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
  save = { every = 1,
           evry = 2 },
  early_stop = { monitor = "train.loss",
    patience = -1 },
}
LUA
run check keys.lua
expect_rc 2
expect_err "keys.lua:4: data: batch_size must be a positive integer, got 0"
sed -i 's/batch_size = 0/batch_size = 2/' keys.lua
run check keys.lua
expect_err "keys.lua:10: save: unknown key 'evry'"
sed -i 's/evry = 2 //' keys.lua
run check keys.lua
expect_err "keys.lua:12: early_stop: patience must be an integer >= 0, got -1"
sed -i 's/patience = -1 //; s/^}$/  epoch = 3,\n}/' keys.lua
run check keys.lua
expect_err "keys.lua:13: pipeline: unknown key 'epoch' (did you mean 'epochs'?)"
printf '1,2,3\n4,5,6\n7,8,9\n1,1,1\n' > features.csv
printf 'y\n0\n1\n\n7\n2\n' > labels.csv
sed 's|tk.data.csv { path = "d.csv" }|tk.data.csv { path = "features.csv", label = tk.data.csv { path = "labels.csv", skip_rows = 1 } }|' \
    base.lua > csvlabels.lua
run check csvlabels.lua
expect_rc 2
expect_err "label 7 out of range for 3 classes (labels.csv row 5)"
cp d.csv secret.csv
chmod 000 secret.csv
sed 's/d.csv/secret.csv/' base.lua > secret.lua
if [ "$(id -u)" = 0 ]; then
    chmod o+rx "$TK_TMP"
    OUT=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$TKRUN" check secret.lua \
          2>"$TK_TMP/stderr") && RC=0 || RC=$?
    ERR=$(cat "$TK_TMP/stderr")
else
    run check secret.lua
fi
expect_rc 2
expect_err "secret.csv' cannot be read: Permission denied"
finish
