# Fine-tuning from weights (--init / init = {...}): tensors load by name and shape, the report
# names what loaded, what is missing, unexpected or mismatched (stdout and note.log); renames
# map old names to new ones; strict mode refuses a partial match; --init and --resume exclude
# each other.
source "$(dirname "$0")/lib.bash"
SCRIPT="$TK_SRC/examples/breast_cancer.lua"
run "$SCRIPT" --run-dir base --quiet --epochs 2
expect_rc 0
W=base/checkpoints/best.safetensors   # 0.weight (32,30) 0.bias 3.weight (2,32) 3.bias

# A deeper head: 0.* still fits, 3.* does not, 5.* is new.
sed 's/nn.linear(2),/nn.linear(32), nn.relu(), nn.linear(2),/' "$SCRIPT" > deeper.lua
run deeper.lua --run-dir ft --quiet --epochs 1 --init "$W"
expect_rc 0
expect_out "init from $W: 2 loaded, 2 missing (kept at their init), 0 unexpected, 2 shape-mismatched"
expect_out "loaded      0.bias, 0.weight"
expect_out "missing     5.weight, 5.bias"
expect_out "mismatched  3.bias (file (2,), model (32,)), 3.weight (file (2, 32), model (32, 32))"
grep -q "2 loaded, 2 missing" ft/note.log && ok || bad "note.log lacks the init report"

# rename: the old head 3.* becomes the new head 5.*.
sed "s|  epochs = 40,|  epochs = 1, init = { path = \"$PWD/$W\", rename = { [\"3.*\"] = \"5.*\" } },|" deeper.lua > renamed.lua
run renamed.lua --run-dir rn --quiet
expect_rc 0
expect_out "4 loaded, 2 missing (kept at their init), 0 unexpected, 0 shape-mismatched"
expect_out "missing     3.weight, 3.bias"

# strict: any difference is an error, exit 2, nothing trained.
sed "s|  epochs = 40,|  epochs = 1, init = { path = \"$PWD/$W\", strict = true },|" deeper.lua > strict.lua
run strict.lua --run-dir st --quiet
expect_rc 2
expect_err "strict init: 2 missing, 0 unexpected, 2 shape-mismatched tensors"
[ ! -e st/metrics.csv ] && ok || bad "a failed strict init still trained"

run "$SCRIPT" --init "$W" --resume base
expect_rc 2
expect_err "--resume continues a run and --init starts one from weights: use one"
run "$SCRIPT" --init nothere.safetensors --quiet
expect_rc 2
expect_err "nothere.safetensors"
finish
