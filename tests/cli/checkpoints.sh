# Save policy and exact resume (DESIGN.md promises): a run killed anywhere and resumed ends
# bit-identical to a straight run; Ctrl-C saves and stops; retention and early stopping keep
# exactly the promised files; corrupted checkpoints are refused by name and skipped in a run
# directory; best.safetensors is what PyTorch's load_state_dict expects; TensorBoard events
# decode with an independent reader.
source "$(dirname "$0")/lib.bash"
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
SCRIPT="$TK_SRC/examples/breast_cancer.lua"
# metrics.csv without the wall-clock column
values() { cut -d, -f1-6 "$1/metrics.csv"; }
same_run() { # same_run A B: final weights, full state and metrics values identical
    $READER same "$1/checkpoints/final.safetensors" "$2/checkpoints/final.safetensors" &&
        cmp -s "$1/checkpoints/last.safetensors" "$2/checkpoints/last.safetensors" &&
        diff <(values "$1") <(values "$2") >/dev/null
}

run "$SCRIPT" --run-dir straight --quiet --epochs 6
expect_rc 0

# 1. SIGKILL mid-epoch (steps 30 and 70), then during a checkpoint write, resumed each time.
TK_TEST_CRASH=step:30 run "$SCRIPT" --run-dir killed --quiet --epochs 6
expect_rc 137
TK_TEST_CRASH=step:70 run "$SCRIPT" --resume killed --quiet --epochs 6
expect_rc 137
TK_TEST_CRASH=save:2 run "$SCRIPT" --resume killed --quiet --epochs 6
expect_rc 137
ls killed/checkpoints/*.tmp.* >/dev/null 2>&1 && ok || bad "the crash in a save left no temp file"
run "$SCRIPT" --resume killed --quiet --epochs 6
expect_rc 0
expect_out "resumed from killed/checkpoints/last.safetensors"
ls killed/checkpoints/*.tmp.* >/dev/null 2>&1 && bad "stale temp file kept" || ok
same_run straight killed && ok || bad "killed-and-resumed run differs from the straight run"

# 2. One SIGINT: state saved mid-epoch, exit 130, resume identical.
TK_TEST_CRASH=int:50 run "$SCRIPT" --run-dir interrupted --quiet --epochs 6
expect_rc 130
expect_err "interrupted at epoch 4, batch 11 (step 50)"
expect_err "resume with: tkrun $SCRIPT --resume interrupted"
[ "$($READER meta interrupted/checkpoints/last.safetensors cursor)" = 11 ] && ok ||
    bad "the interrupt did not save a mid-epoch state"
run "$SCRIPT" --resume interrupted --quiet --epochs 6
expect_rc 0
same_run straight interrupted && ok || bad "interrupted-and-resumed run differs"
#    A SIGINT in an epoch's last step stops at the epoch boundary, resumable too.
TK_TEST_CRASH=int:13 run "$SCRIPT" --run-dir boundary --quiet --epochs 6
expect_rc 130
expect_err "interrupted after epoch 1 (step 13)"
run "$SCRIPT" --resume boundary --quiet --epochs 6
expect_rc 0
same_run straight boundary && ok || bad "resume after an epoch-boundary interrupt differs"
#    Two SIGINTs: out at once, the epoch-3 checkpoint untouched and still good.
TK_TEST_CRASH=int2:50 run "$SCRIPT" --run-dir twice --quiet --epochs 6
expect_rc 130
[ "$($READER meta twice/checkpoints/last.safetensors epoch)" = 3 ] &&
    [ "$($READER meta twice/checkpoints/last.safetensors cursor)" = 0 ] && ok ||
    bad "a second Ctrl-C touched last.safetensors"
run "$SCRIPT" --resume twice --quiet --epochs 6
expect_rc 0
same_run straight twice && ok || bad "resume after a double interrupt differs"

# 3. Retention: every 2 epochs, keep 2, best, last.
run "$SCRIPT" --run-dir kept --quiet --epochs 7 --set save.every=2 --set save.keep=2
expect_rc 0
[ "$(cd kept/checkpoints && echo *)" = \
  "best.safetensors epoch-0004.safetensors epoch-0006.safetensors final.safetensors last.safetensors" ] &&
    ok || bad "checkpoints kept: $(cd kept/checkpoints && echo *)"
#    Early stop with restore_best ends with the best weights, by patience or by epochs.
run "$SCRIPT" --run-dir patience --quiet --epochs 40 --set early_stop.patience=2 \
    --set early_stop.restore_best=true
expect_rc 0
expect_out "early stop after epoch"
[ "$(grep -c ',train,' patience/metrics.csv)" -lt 40 ] && ok || bad "patience did not stop the run"
$READER same patience/checkpoints/best.safetensors patience/checkpoints/final.safetensors && ok ||
    bad "final weights are not the best ones (patience)"
run "$SCRIPT" --run-dir epochs_end --quiet --epochs 5 --set early_stop.patience=30 \
    --set early_stop.restore_best=true
expect_rc 0
$READER same epochs_end/checkpoints/best.safetensors epochs_end/checkpoints/final.safetensors &&
    ok || bad "final weights are not the best ones (epochs)"

# 4. Corruption: each refused with the file and the failure; a run dir falls back.
ck=kept/checkpoints
head -c 3000 $ck/last.safetensors > truncated.safetensors
cp $ck/last.safetensors flipped.safetensors
printf '\x55' | dd of=flipped.safetensors bs=1 seek=$(( $(stat -c %s flipped.safetensors) - 100 )) conv=notrunc status=none
head -c 4096 /dev/urandom > magic.safetensors
sed 's/nn.linear(32)/nn.linear(16)/' "$SCRIPT" > narrower.lua
run narrower.lua --run-dir other --quiet --epochs 1
cp other/checkpoints/last.safetensors wrongmodel.safetensors
for f in truncated flipped magic wrongmodel; do
    mkdir -p "c_$f/checkpoints" && cp $f.safetensors "c_$f/checkpoints/x.safetensors"
    run "$SCRIPT" --resume "c_$f/checkpoints/x.safetensors" --quiet --epochs 6
    expect_rc 2
    expect_err "c_$f/checkpoints/x.safetensors"
done
run "$SCRIPT" --resume c_flipped/checkpoints/x.safetensors --quiet
expect_err "corrupted: checksum"
run "$SCRIPT" --resume c_wrongmodel/checkpoints/x.safetensors --quiet
expect_err "the model's structure changed since this checkpoint"
expect_err "'0.weight' is (16, 30) in the checkpoint but (32, 30) here"
cp -r kept fallback
cp flipped.safetensors fallback/checkpoints/last.safetensors
run "$SCRIPT" --resume fallback --quiet --epochs 7
expect_rc 0
expect_out "skipped fallback/checkpoints/last.safetensors"
expect_out "resumed from fallback/checkpoints/epoch-0006.safetensors"

# 5. PyTorch interop: names and shapes of nn.Sequential's state_dict, values round-trip.
$READER check straight/checkpoints/best.safetensors \
    "$TK_SRC/tests/fixtures/state_dict_breast_cancer.json" && ok || bad "best.safetensors vs state_dict"
$READER copy straight/checkpoints/best.safetensors pycopy.safetensors
run "$SCRIPT" --run-dir roundtrip --quiet --epochs 1 --init pycopy.safetensors \
    --set optimizer.lr=0 --set optimizer.momentum=0 --set optimizer.weight_decay=0
expect_rc 0
$READER same pycopy.safetensors roundtrip/checkpoints/final.safetensors && ok ||
    bad "weights written by Python did not round-trip through tkrun"

# 7. TensorBoard: the run's events decode with the independent reader.
ev=$(ls straight/events.out.tfevents.* | head -1)
tags=$(/usr/bin/python3 "$TK_SRC/tests/tfevents_reader.py" "$ev")
grep -q '^train/loss 78 ' <<<"$tags" && ok || bad "no train/loss event at the last step (78)"
for tag in valid/loss valid/accuracy lr/group0; do
    grep -q "^$tag " <<<"$tags" && ok || bad "no $tag event"
done
[ "$(grep -c '^train/loss ' <<<"$tags")" = 6 ] && ok || bad "expected 6 train/loss events"
finish
