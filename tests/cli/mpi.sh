# Data-parallel training on MPI (registered only when CMake finds MPI): 2 ranks of a global
# batch 64 give one process's losses and weights within float32 rounding (the MLP and a small
# CNN, synchronised batch norm, a class-weighted loss with ignored rows); a rank killed or
# interrupted mid-epoch stops every rank, and resuming on 2 ranks ends bit-identical to the
# straight 2-rank run; what sharding would change is refused.
source "$(dirname "$0")/lib.bash"
SRC=/usr/share/datasets/fashion-mnist
MPI=("$MPIEXEC" --allow-run-as-root --oversubscribe -np 2)
mkdir -p fashion-mnist
/usr/bin/python3 - "$SRC" <<'PY'
import gzip, struct, sys
for name, n in [("train-images-idx3-ubyte.gz", 640), ("train-labels-idx1-ubyte.gz", 640),
                ("t10k-images-idx3-ubyte.gz", 128), ("t10k-labels-idx1-ubyte.gz", 128)]:
    raw = gzip.open(sys.argv[1] + "/" + name).read()
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    record = 1
    for d in dims[1:]:
        record *= d
    head = raw[:4] + struct.pack(">I", n) + raw[8:4 + 4 * ndim]
    gzip.open("fashion-mnist/" + name, "wb").write(head + raw[4 + 4 * ndim:][:n * record])
PY
# The example MLP (its dropout-free model, Adam, warmup + cosine, clipping) for 2 epochs of
# 9 steps; a CNN with dropout (each row must draw the mask one process draws) on 320 rows.
sed -e 's/epochs = 10/epochs = 2/' -e 's/warmup_steps = 500/warmup_steps = 5/' \
    "$TK_SRC/examples/fashion_mnist/mlp.lua" > mlp.lua
cat > cnn.lua <<'EOF'
local nn, data = tk.nn, tk.data
return tk.pipeline {
  name = "cnn", seed = 7,
  data = {
    train = data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                       labels = "fashion-mnist/train-labels-idx1-ubyte.gz", scale = 1/255 },
    valid = data.split { from = "train", fraction = 0.5 },
    batch_size = 64, shuffle = true,
  },
  model = nn.sequential {
    nn.conv2d { out_channels = 6, kernel_size = 5, stride = 2 }, nn.relu(), nn.max_pool2d(2),
    nn.flatten(), nn.dropout(0.25), nn.linear(10),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.05, momentum = 0.9 },
  epochs = 2,
}
EOF

# max |a - b| over every tensor of two safetensors files ("bitwise" when all bits agree)
weights_diff() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
if a.keys() != b.keys():
    print("tensors differ"); sys.exit()
if a == b:
    print("bitwise"); sys.exit()
worst = 0.0
for k in a:
    x = struct.unpack("<%df" % (len(a[k]) // 4), a[k])
    y = struct.unpack("<%df" % (len(b[k]) // 4), b[k])
    worst = max([worst] + [abs(p - q) for p, q in zip(x, y)])
print("%.3g" % worst)
PY
}
# loss and accuracy columns of metrics.csv (not the timings)
losses() { cut -d, -f1-5 "$1/metrics.csv"; }
# the same rows, each loss within 1e-5 relative of the other's (float32 rounding of the sums)
close_losses() {
    paste -d, <(losses "$1") <(losses "$2") | awk -F, 'NR > 1 {
        d = $4 - $9; if (d < 0) d = -d
        if ($1 != $6 || $3 != $8 || $5 != $10 || d > 1e-5 * ($4 < 0 ? -$4 : $4)) bad = 1 }
        END { exit bad }'
}
# the bound stated in the README: 2 ranks vs 1 process, after these few dozen steps
within() { [ "$1" = bitwise ] || awk -v d="$1" -v b="$2" 'BEGIN { exit !(d <= b) }'; }

for model in mlp cnn; do
    run "$model.lua" --run-dir "$model-1" --threads 1 --quiet
    expect_rc 0
    OUT=$("${MPI[@]}" "$TKRUN" "$model.lua" --run-dir "$model-2" 2>"$TK_TMP/stderr") && RC=0 || RC=$?
    ERR=$(cat "$TK_TMP/stderr")
    expect_rc 0
    expect_out "data-parallel: 2 ranks x 32 samples (global batch 64)"
    close_losses "$model-1" "$model-2" && ok ||
        bad "$model: losses differ: $(diff <(losses "$model-1") <(losses "$model-2"))"
    d=$(weights_diff "$model-1/checkpoints/final.safetensors" "$model-2/checkpoints/final.safetensors")
    within "$d" 1e-5 && ok || bad "$model: final weights of 2 ranks vs 1 process differ by $d"
    [ "$(ls "$model-2" | sed 's/tfevents.*/tfevents/')" = \
      "$(ls "$model-1" | sed 's/tfevents.*/tfevents/')" ] && ok || bad "$model: run dirs differ"
done
# The run is a function of the rank count: 2 ranks again give the same bits.
"${MPI[@]}" "$TKRUN" mlp.lua --run-dir again --quiet >/dev/null 2>&1
[ "$(weights_diff again/checkpoints/final.safetensors mlp-2/checkpoints/final.safetensors)" = \
  bitwise ] && ok || bad "two 2-rank runs differ"

# Rank 1 alone is killed (SIGKILL) at step 14, mid epoch 2: every rank stops, epoch 1's
# checkpoint stays; resuming on 2 ranks ends where the straight run ends, bit for bit.
on_rank1() {
    "${MPI[@]}" bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then export TK_TEST_CRASH="$0"; fi
                         exec "$TKRUN" "$@"' "$@"
}
on_rank1 step:14 mlp.lua --run-dir killed --quiet >/dev/null 2>"$TK_TMP/stderr" && RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
[ "$RC" != 0 ] && ok || bad "a killed rank left mpirun's exit code 0"
expect_err "exited on signal 9"
[ ! -f killed/checkpoints/final.safetensors ] && ok || bad "the job went on after a rank died"
grep -q '"epoch":"1"' killed/checkpoints/last.safetensors && ok ||
    bad "last.safetensors is not epoch 1's"
"${MPI[@]}" "$TKRUN" mlp.lua --resume killed --quiet >/dev/null 2>&1 && RC=0 || RC=$?
expect_rc 0
[ "$(weights_diff killed/checkpoints/final.safetensors mlp-2/checkpoints/final.safetensors)" = \
  bitwise ] && ok || bad "resume after a killed rank differs from the straight run"

# SIGINT on rank 1 alone after step 14: every rank sees it in the next step's reduction and
# stops after that same step (15); rank 0 saves; 130.
on_rank1 int:14 mlp.lua --run-dir stopped >/dev/null 2>"$TK_TMP/stderr" && RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 130
expect_err "interrupted at epoch 2, batch 6 (step 15)"
expect_err "resume with: tkrun --ranks 2 mlp.lua --resume stopped"
"${MPI[@]}" "$TKRUN" mlp.lua --resume stopped --quiet >/dev/null 2>&1 && RC=0 || RC=$?
expect_rc 0
[ "$(weights_diff stopped/checkpoints/final.safetensors mlp-2/checkpoints/final.safetensors)" = \
  bitwise ] && ok || bad "resume after an interrupted rank differs from the straight run"
[ "$(losses stopped)" = "$(losses mlp-2)" ] && ok || bad "metrics after the resume differ"

# --ranks N runs mpirun on this machine; a checkpoint of 2 ranks resumes on 1 with a notice.
run --ranks 2 mlp.lua --run-dir shorthand --quiet --epochs 1
expect_rc 0
expect_out "data-parallel: 2 ranks x 32 samples"
run mlp.lua --resume shorthand --epochs 2 --quiet
expect_rc 0
expect_out "the checkpoint was written by 2 ranks, this run has 1"

# Ctrl-C on `tkrun --ranks 2` (SIGINT to it): every rank saves after the same step, exit 130,
# and the run resumes to the straight run's weights.
"$TKRUN" --ranks 2 mlp.lua --run-dir ctrlc --epochs 400 --quiet >/dev/null 2>"$TK_TMP/stderr" &
pid=$!
for _ in $(seq 600); do [ -s ctrlc/train.log ] && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid" && RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 130
expect_err "state saved to ctrlc/checkpoints/last.safetensors"
[ ! -f ctrlc/checkpoints/final.safetensors ] && ok || bad "Ctrl-C did not stop the run"

# Ctrl-C on a bare mpirun (SIGINT to it): Open MPI 4.1 aborts the job (SIGTERM to the ranks
# odls_base_sigkill_timeout seconds later, SIGKILL as long after that) and exits 1 whatever
# the ranks return; the ranks save after the same step, and the run resumes. (The default
# second was enough here; 2 keeps a loaded machine's fsync from missing it.)
OMPI_MCA_odls_base_sigkill_timeout=2 "${MPI[@]}" "$TKRUN" mlp.lua --run-dir bare --epochs 400 \
    --quiet >/dev/null 2>"$TK_TMP/stderr" &
pid=$!
for _ in $(seq 600); do [ -s bare/train.log ] && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid" && RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 1
expect_err "state saved to bare/checkpoints/last.safetensors"
[ ! -f bare/checkpoints/final.safetensors ] && ok || bad "Ctrl-C on mpirun did not stop the run"
epoch=$(sed -n 's/.*interrupted \(after\|at\) epoch \([0-9]*\).*/\2/p' <<<"$ERR" | head -1)
"${MPI[@]}" "$TKRUN" mlp.lua --resume bare --epochs $((epoch + 1)) --quiet >/dev/null 2>&1 &&
    RC=0 || RC=$?
expect_rc 0
[ -f bare/checkpoints/final.safetensors ] && ok || bad "the run saved by Ctrl-C on mpirun did not resume"

# Batch norm keeps per-rank statistics by default (rank 0's are kept); a checkpoint of 2
# ranks does not resume on 1, since the statistics would change meaning.
sed -e 's/nn.linear(512), nn.relu(),$/nn.linear(64), nn.batch_norm1d(), nn.relu(),/' \
    -e 's/epochs = 2/epochs = 1/' mlp.lua > bn.lua
grep -q batch_norm1d bn.lua && ok || bad "bn.lua has no batch norm"
OUT=$("${MPI[@]}" "$TKRUN" bn.lua --run-dir bn 2>"$TK_TMP/stderr") && RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 0
run bn.lua --resume bn --epochs 2
expect_rc 2
expect_err "batch-norm statistics (2.running_mean) were taken per rank of 2"
expect_err "resume with 2 ranks and sync_batch_norm = false"

# sync_batch_norm = true: statistics over the global batch, so 2 ranks give one process's
# losses and weights within rounding. SGD, not Adam: a parameter whose gradient is zero but
# for rounding (a bias before a batch norm, a weight of a pixel that is the same in every
# image of the batch) takes lr-sized Adam steps whose sign the rounding picks.
cat > sbn.lua <<'EOF'
local nn, data = tk.nn, tk.data
return tk.pipeline {
  name = "sbn", seed = 5,
  data = {
    train = data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                       labels = "fashion-mnist/train-labels-idx1-ubyte.gz", scale = 1/255 },
    valid = data.split { from = "train", fraction = 0.1 },
    batch_size = 64, shuffle = true,
  },
  model = nn.sequential {
    nn.flatten(),
    nn.linear { out_features = 64, bias = false }, nn.batch_norm1d(), nn.relu(),
    nn.linear { out_features = 64, bias = false }, nn.batch_norm1d(), nn.relu(),
    nn.linear(10),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.05, momentum = 0.9 },
  epochs = 2, sync_batch_norm = true,
}
EOF
grep -q "sync_batch_norm = true" sbn.lua && ok || bad "sbn.lua does not sync its batch norm"
# The CNN with a batch_norm2d after its convolution: statistics over rows and positions.
sed -e 's/nn.conv2d { out_channels = 6, kernel_size = 5, stride = 2 }, nn.relu(),/nn.conv2d { out_channels = 6, kernel_size = 5, stride = 2, bias = false }, nn.batch_norm2d(), nn.relu(),/' \
    -e 's/^  epochs = 2,$/  epochs = 2, sync_batch_norm = true,/' cnn.lua > sbn2d.lua
grep -q "batch_norm2d(), nn.relu()" sbn2d.lua && ok || bad "sbn2d.lua has no batch norm"
for model in sbn sbn2d; do
    run "$model.lua" --run-dir "$model-1" --threads 1 --quiet
    expect_rc 0
    "${MPI[@]}" "$TKRUN" "$model.lua" --run-dir "$model-2" --quiet >/dev/null 2>&1 && RC=0 || RC=$?
    expect_rc 0
    close_losses "$model-1" "$model-2" && ok ||
        bad "$model: losses differ: $(diff <(losses "$model-1") <(losses "$model-2"))"
    d=$(weights_diff "$model-1/checkpoints/final.safetensors" "$model-2/checkpoints/final.safetensors")
    within "$d" 1e-5 && ok || bad "$model: 2 ranks vs 1 process differ by $d"
done
# Without it, the same model's per-rank statistics are not one process's.
"${MPI[@]}" "$TKRUN" sbn.lua --run-dir sbn-local --set sync_batch_norm=false --quiet \
    >/dev/null 2>&1 && RC=0 || RC=$?
expect_rc 0
d=$(weights_diff sbn-1/checkpoints/final.safetensors sbn-local/checkpoints/final.safetensors)
! within "$d" 1e-4 && ok || bad "per-rank statistics end within $d of one process"
# Rank 1 killed mid epoch 2: resuming on 2 ranks ends bit-identical to the straight run; on
# one process (the statistics mean the same) it continues within rounding, with a notice.
on_rank1 step:14 sbn.lua --run-dir sbn-killed --quiet >/dev/null 2>&1 && RC=0 || RC=$?
[ "$RC" != 0 ] && ok || bad "a killed rank left mpirun's exit code 0"
cp -r sbn-killed sbn-killed-1
"${MPI[@]}" "$TKRUN" sbn.lua --resume sbn-killed --quiet >/dev/null 2>&1 && RC=0 || RC=$?
expect_rc 0
[ "$(weights_diff sbn-killed/checkpoints/final.safetensors sbn-2/checkpoints/final.safetensors)" = \
  bitwise ] && ok || bad "sync_batch_norm: resume after a killed rank differs from the straight run"
[ "$(losses sbn-killed)" = "$(losses sbn-2)" ] && ok || bad "sync_batch_norm: metrics after the resume differ"
run sbn.lua --resume sbn-killed-1 --threads 1 --quiet
expect_rc 0
expect_out "the checkpoint was written by 2 ranks, this run has 1"
d=$(weights_diff sbn-killed-1/checkpoints/final.safetensors sbn-1/checkpoints/final.safetensors)
within "$d" 1e-5 && ok || bad "sync_batch_norm: resumed on 1 process, $d from one process"
# Switching to per-rank statistics mid-run is refused.
OUT=$("${MPI[@]}" "$TKRUN" sbn.lua --resume sbn-killed --epochs 3 --set sync_batch_norm=false \
    2>"$TK_TMP/stderr") && RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 2
expect_err "were taken over the whole batch"
# A last batch of 1 row would leave rank 1 out of the statistics' sums: refused.
OUT=$("${MPI[@]}" "$TKRUN" sbn.lua --run-dir sbn-short --set data.batch_size=575 \
    2>"$TK_TMP/stderr") && RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 2
expect_err "sync_batch_norm: the last batch of an epoch has 1 row (576 training rows, batch_size 575)"
[ ! -d sbn-short ] && ok || bad "a refused run left its run directory"

# Class weights and ignored rows (class 9): every shard divides by the whole batch's
# denominator, so 2 ranks give one process's losses and weights within rounding.
sed -e 's/loss = tk.loss.cross_entropy {},/loss = tk.loss.cross_entropy { weight = {2, 0.5, 1, 1, 1, 1, 1, 1, 3, 1}, ignore_index = 9 },/' \
    mlp.lua > weighted.lua
grep -q "ignore_index = 9" weighted.lua && ok || bad "weighted.lua has no class weights"
run weighted.lua --run-dir weighted-1 --threads 1 --quiet
expect_rc 0
"${MPI[@]}" "$TKRUN" weighted.lua --run-dir weighted-2 --quiet >/dev/null 2>&1 && RC=0 || RC=$?
expect_rc 0
close_losses weighted-1 weighted-2 && ok ||
    bad "weighted: losses differ: $(diff <(losses weighted-1) <(losses weighted-2))"
d=$(weights_diff weighted-1/checkpoints/final.safetensors weighted-2/checkpoints/final.safetensors)
within "$d" 1e-5 && ok || bad "weighted: 2 ranks vs 1 process differ by $d"

# Refused: more ranks than rows in a batch.
OUT=$("${MPI[@]}" "$TKRUN" mlp.lua --run-dir tiny --set data.batch_size=1 2>"$TK_TMP/stderr") &&
    RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 2
expect_err "batch_size 1 over 2 ranks leaves ranks without rows"
finish
