# full_disk.sh - a save that hits ENOSPC or EIO (write, fsync or rename, injected by
# tests/faults/inject.c through LD_PRELOAD) names the file and the error, exits 1, removes its
# temp file and keeps the previous checkpoint valid: resuming from it ends bit-identical to a
# straight run. A log that cannot be written ends the run the same way. A run on a small tmpfs that fills up mid-run ends the same way (skipped where
# mounting is not allowed).
source "$(dirname "$0")/lib.bash"
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
cp "$TK_SRC/tests/bad_inputs/_common/base.lua" "$TK_SRC/tests/bad_inputs/_common/d.csv" .

run base.lua --run-dir straight --epochs 4 --quiet
expect_rc 0

# faulty NAME SPEC EPOCH MESSAGE ERROR: the fault SPEC stops the run after EPOCH saved epochs
# with MESSAGE and the errno's text ERROR; the run then resumes to the straight run's weights.
faulty() {
    TK_FAULT="$2" LD_PRELOAD="$TK_FAULT_LIB" ASAN_OPTIONS=verify_asan_link_order=0 \
        run base.lua --run-dir "$1" --epochs 4 --quiet
    expect_rc 1
    expect_err "$4"
    expect_err "$5"
    ls "$1"/checkpoints/*.tmp.* >/dev/null 2>&1 && bad "$1: temp file left behind" || ok
    [ "$($READER meta "$1/checkpoints/last.safetensors" epoch 2>&1)" = "$3" ] && ok ||
        bad "$1: last.safetensors is not epoch $3's: $($READER meta "$1/checkpoints/last.safetensors" epoch 2>&1)"
    run base.lua --resume "$1" --epochs 4 --quiet
    expect_rc 0
    $READER same straight/checkpoints/final.safetensors "$1/checkpoints/final.safetensors" &&
        cmp -s straight/checkpoints/last.safetensors "$1/checkpoints/last.safetensors" && ok ||
        bad "$1: the resumed run differs from the straight run"
}
faulty nospace 'write:*/last.safetensors.tmp.*:2+:ENOSPC' 1 \
    "cannot write 'nospace/checkpoints/last.safetensors.tmp." "No space left on device"
faulty fsync_eio 'fsync:*/last.safetensors.tmp.*:3:EIO' 2 \
    "cannot sync 'fsync_eio/checkpoints/last.safetensors.tmp." "Input/output error"
faulty rename_eio 'rename:*/last.safetensors:2:EIO' 1 \
    "cannot rename 'rename_eio/checkpoints/last.safetensors.tmp." "Input/output error"
faulty best_nospace 'write:*/best.safetensors.tmp.*:2:ENOSPC' 2 \
    "cannot write 'best_nospace/checkpoints/best.safetensors.tmp." "No space left on device"
# A log line that cannot be written ends the run too (exit 1), its checkpoints intact.
faulty log_nospace 'fflush:*/train.log:2:ENOSPC' 1 \
    "cannot write log_nospace/train.log" "No space left on device"

# A real full disk: 40 KiB of tmpfs fills with logs and checkpoints after some 70 epochs.
mkdir disk
trap 'umount "$TK_TMP/disk" 2>/dev/null' EXIT
trap 'exit 1' INT TERM
if mount -t tmpfs -o size=40k tmpfs disk 2>/dev/null; then
    run base.lua --run-dir disk/run --epochs 400 --quiet --set tensorboard=false
    expect_rc 1
    expect_err "No space left on device"
    ls disk/run/checkpoints/*.tmp.* >/dev/null 2>&1 && bad "full tmpfs: temp file left" || ok
    saved=$($READER meta disk/run/checkpoints/last.safetensors epoch 2>&1)
    expect_ge "$saved" 10 "epochs saved before the disk filled"
    cp -r disk/run copy && umount disk
    # The saved state resumes, on a disk with room, to what a straight run of as many epochs
    # plus five computes.
    end=$((saved + 5))
    run base.lua --resume copy --epochs $end --quiet --set tensorboard=false
    expect_rc 0
    run base.lua --run-dir straight_long --epochs $end --quiet --set tensorboard=false
    expect_rc 0
    cmp -s straight_long/checkpoints/last.safetensors copy/checkpoints/last.safetensors && ok ||
        bad "full tmpfs: the saved state did not resume to the straight run's"
else
    echo "skipped the tmpfs case: mounting is not allowed here"
fi
finish
