# End to end on the real CSVs of Debian's python3-sklearn: iris and breast_cancer reach their
# test accuracy with fixed seeds, and the run directory holds the logs DESIGN.md promises.
source "$(dirname "$0")/lib.bash"

test_accuracy() { sed -n 's/^test: loss [0-9.]* accuracy \([0-9.]*\)$/\1/p' <<<"$OUT"; }

run "$TK_SRC/examples/iris.lua" --run-dir iris_run --threads 1
expect_rc 0
expect_ge "$(test_accuracy)" 0.93 "iris test accuracy"
for f in note.log train.log valid.log metrics.csv; do
    [ -s "iris_run/$f" ] && ok || bad "iris_run/$f missing or empty"
done
[ "$(head -1 iris_run/metrics.csv)" = "epoch,step,split,loss,accuracy,lr,seconds" ] && ok ||
    bad "metrics.csv header: $(head -1 iris_run/metrics.csv)"
# 60 train rows + 60 valid rows + 1 test row, after the header.
[ "$(grep -c ',train,' iris_run/metrics.csv)" = 60 ] && ok || bad "train rows in metrics.csv"
[ "$(grep -c ',valid,' iris_run/metrics.csv)" = 60 ] && ok || bad "valid rows in metrics.csv"
[ "$(grep -c ',test,' iris_run/metrics.csv)" = 1 ] && ok || bad "test rows in metrics.csv"
grep -q "confusion matrix (rows: true, columns: predicted)" iris_run/test_report.txt && ok ||
    bad "test_report.txt lacks the confusion matrix"
expect_out "macro avg"
grep -q "seed 5, threads 1" iris_run/note.log && ok || bad "note.log lacks seed/threads"
grep -q "linear" iris_run/note.log && ok || bad "note.log lacks the layer table"
grep -q "OpenBLAS" iris_run/note.log && ok || bad "note.log lacks versions"
grep -q "lr" iris_run/note.log && ok || bad "note.log lacks the config"
# Non-TTY output: exactly one line per epoch.
[ "$(grep -c '^epoch ' <<<"$OUT")" = 60 ] && ok || bad "expected 60 epoch lines"

# Same seed, same threads: the same numbers.
cp iris_run/metrics.csv first.csv
run "$TK_SRC/examples/iris.lua" --run-dir iris_again --threads 1
diff <(cut -d, -f1-6 first.csv) <(cut -d, -f1-6 iris_again/metrics.csv) >/dev/null && ok ||
    bad "a second run with the same seed differs"

run "$TK_SRC/examples/breast_cancer.lua" --run-dir bc_run --quiet
expect_rc 0
expect_ge "$(test_accuracy)" 0.95 "breast_cancer test accuracy"

# --set and --epochs reach the run.
run "$TK_SRC/examples/iris.lua" --run-dir short --epochs 2 --set optimizer.lr=0.05
expect_rc 0
[ "$(grep -c ',train,' short/metrics.csv)" = 2 ] && ok || bad "--epochs 2 ran another count"
grep -q "0.05" short/note.log && ok || bad "--set optimizer.lr did not reach note.log"
finish
