# kill_anywhere.sh - DESIGN.md §5: a run killed at any moment and resumed ends bit-identical to
# a straight run. 20 SIGKILLs at seeded random points, four of each kind (TK_KILL_SEED overrides
# the seed; the points are printed): after a step (TK_TEST_CRASH=step:N), between a
# checkpoint's write and its rename (save:N), inside a checkpoint's write (the injector's
# write:...:KILL), at a log line's flush (fflush:...:KILL on train.log, valid.log,
# metrics.csv) and after a random delay (timeout -s KILL), which lands anywhere, evaluation
# included. Each is resumed (or, killed before any checkpoint, rerun) and compared.
source "$(dirname "$0")/lib.bash"
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
SCRIPT="$TK_SRC/examples/breast_cancer.lua"
SEED=${TK_KILL_SEED:-20261202}
RANDOM=$SEED
values() { cut -d, -f1-6 "$1/metrics.csv"; }
same_run() {
    $READER same "$1/checkpoints/final.safetensors" "$2/checkpoints/final.safetensors" &&
        cmp -s "$1/checkpoints/last.safetensors" "$2/checkpoints/last.safetensors" &&
        diff <(values "$1") <(values "$2") >/dev/null
}
preload() { LD_PRELOAD="$TK_FAULT_LIB" ASAN_OPTIONS=verify_asan_link_order=0 TK_FAULT="$1" "${@:2}"; }

run "$SCRIPT" --run-dir straight --quiet --epochs 6
expect_rc 0
logs=(train.log valid.log metrics.csv)
points=()
for i in $(seq 20); do
    case $((i % 5)) in
        0) points+=("step:$((RANDOM % 78 + 1))") ;;
        1) points+=("save:$((RANDOM % 7 + 1))") ;;
        2) points+=("write:$((RANDOM % 7 + 1))") ;;
        3) points+=("log:${logs[RANDOM % 3]}:$((RANDOM % 6 + 1))") ;;
        4) points+=("delay:0.$(printf %03d $((RANDOM % 120 + 5)))") ;;
    esac
done
echo "kill points (seed $SEED): ${points[*]}"

for i in "${!points[@]}"; do
    p=${points[i]} dir=killed$i
    case $p in
        step:* | save:*) TK_TEST_CRASH=$p run "$SCRIPT" --run-dir $dir --quiet --epochs 6 ;;
        write:*) preload "write:*.safetensors.tmp.*:${p#write:}:KILL" \
            run "$SCRIPT" --run-dir $dir --quiet --epochs 6 ;;
        log:*) n=${p##*:} file=${p#log:} && file=${file%:*}
            preload "fflush:*/$file:$n:KILL" run "$SCRIPT" --run-dir $dir --quiet --epochs 6 ;;
        delay:*) OUT=$(timeout -s KILL "${p#delay:}" "$TKRUN" "$SCRIPT" --run-dir $dir --quiet \
            --epochs 6 2>&1) && RC=0 || RC=$? ;;
    esac
    killed_rc=$RC
    if [ "$killed_rc" = 0 ]; then
        echo "$p: the run ended before the kill"
    elif [ ! -f $dir/checkpoints/last.safetensors ]; then
        # Killed before the first checkpoint: there is nothing to resume, so it starts over.
        [ "$killed_rc" = 137 ] && ok || bad "$p: exit $killed_rc, expected 137 (SIGKILL)"
        rm -rf $dir
        run "$SCRIPT" --run-dir $dir --quiet --epochs 6
        expect_rc 0
    else
        [ "$killed_rc" = 137 ] && ok || bad "$p: exit $killed_rc, expected 137 (SIGKILL)"
        run "$SCRIPT" --resume $dir --quiet --epochs 6
        expect_rc 0
        ls $dir/checkpoints/*.tmp.* >/dev/null 2>&1 && bad "$p: a stale temp file was kept" || ok
    fi
    same_run straight $dir && ok || bad "$p: the killed-and-resumed run differs from the straight run"
done
finish
