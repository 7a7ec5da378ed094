# Data-parallel training on MPI (registered only when CMake finds MPI): 2 ranks of a global
# batch 64 give one process's losses and weights within float32 rounding (the MLP and a small
# CNN); a rank killed or interrupted mid-epoch stops every rank, and resuming on 2 ranks ends
# bit-identical to the straight 2-rank run; what sharding would change is refused.
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

# Batch norm keeps per-rank statistics (rank 0's are kept); a checkpoint of 2 ranks does not
# resume on 1, since the statistics would change meaning.
sed -e 's/nn.linear(512), nn.relu(),$/nn.linear(64), nn.batch_norm1d(), nn.relu(),/' \
    -e 's/epochs = 2/epochs = 1/' mlp.lua > bn.lua
grep -q batch_norm1d bn.lua && ok || bad "bn.lua has no batch norm"
OUT=$("${MPI[@]}" "$TKRUN" bn.lua --run-dir bn 2>"$TK_TMP/stderr") && RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 0
run bn.lua --resume bn --epochs 2
expect_rc 2
expect_err "written by a run on 2 ranks; this model keeps batch-norm statistics per rank"

# sync_batch_norm = true is refused (not implemented), false is the default behaviour.
run check bn.lua --set sync_batch_norm=true
expect_rc 2
expect_err "sync_batch_norm = true is not supported yet"
run check bn.lua --set sync_batch_norm=false
expect_rc 0

# Refused: more ranks than rows in a batch.
OUT=$("${MPI[@]}" "$TKRUN" mlp.lua --run-dir tiny --set data.batch_size=1 2>"$TK_TMP/stderr") &&
    RC=0 || RC=$?
ERR=$(cat "$TK_TMP/stderr")
expect_rc 2
expect_err "batch_size 1 over 2 ranks leaves ranks without rows"
finish
