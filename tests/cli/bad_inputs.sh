# bad_inputs.sh - runs the bad-input corpus (tests/bad_inputs/, see its README): each case is
# run in a scratch copy of _common/ plus its own files, and passes when tkrun exits with the
# expected code, its output contains the expected text (and not the rejected one), every file
# it was given is unchanged (sha256), and it wrote nothing: no run directory, no checkpoint.
# Cases marked `pending` (a fix another issue owns) are run and reported, not counted.
source "$(dirname "$0")/lib.bash"
CORPUS="$TK_SRC/tests/bad_inputs"
META="cmd exit_code expect reject setup pending timeout"

# A trained run the checkpoint cases copy and damage (setup scripts find it as $BASE_RUN).
mkdir base && cp -r "$CORPUS/_common/." base/
(cd base && "$TKRUN" base.lua --run-dir run --quiet >/dev/null 2>&1) ||
    bad "the base run for the checkpoint cases failed"
(cd base && "$TKRUN" other_optim.lua --run-dir run_sgd --quiet >/dev/null 2>&1) ||
    bad "the sgd base run for the checkpoint cases failed"
export BASE_RUN="$TK_TMP/base/run" BASE_SGD_RUN="$TK_TMP/base/run_sgd"

# Every path under the current directory with its type, then the sha256 of each file.
snapshot() {
    find . -mindepth 1 -printf '%y %p\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
}

PENDING=()
FAILED=()
for dir in "$CORPUS"/*/; do
    name=$(basename "$dir")
    [ "$name" = _common ] && continue
    work="$TK_TMP/cases/$name"
    mkdir -p "$work" && cp -r "$CORPUS/_common/." "$work/"
    for f in "$dir"*; do
        case " $META " in *" $(basename "$f") "*) ;; *) cp -r "$f" "$work/" ;; esac
    done
    why=""
    if [ -f "$dir/setup" ] && ! (cd "$work" && bash "$dir/setup" >"$TK_TMP/setup.log" 2>&1); then
        why="setup failed: $(cat "$TK_TMP/setup.log")"
    fi
    if [ -z "$why" ]; then
        eval "args=($(cat "$dir/cmd"))"
        want=$(cat "$dir/exit_code")
        limit=$(cat "$dir/timeout" 2>/dev/null || echo 20)
        before=$(cd "$work" && snapshot)
        (cd "$work" && timeout -s KILL "$limit" "$TKRUN" "${args[@]}" </dev/null \
            >"$TK_TMP/out" 2>&1) && rc=0 || rc=$?
        after=$(cd "$work" && snapshot)
        out=$(head -c 2000 "$TK_TMP/out")
        expect=$(cat "$dir/expect")
        if [ "$rc" != "$want" ]; then
            why="exit $rc, expected $want"
        elif ! grep -qF -- "$expect" "$TK_TMP/out"; then
            why="output lacks '$expect'"
        elif [ -f "$dir/reject" ] && grep -qF -- "$(cat "$dir/reject")" "$TK_TMP/out"; then
            why="output contains '$(cat "$dir/reject")'"
        elif [ "$before" != "$after" ]; then
            why="files changed: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' |
                head -5 | tr '\n' ' ')"
        fi
        [ -n "$why" ] && why="$why; output: $out"
    fi
    if [ -f "$dir/pending" ]; then
        state="still failing: ${why:0:160}"
        [ -z "$why" ] && state="now passes: delete its pending file"
        PENDING+=("$name ($(head -1 "$dir/pending")): $state")
    elif [ -n "$why" ]; then
        FAILED+=("$name")
        bad "$name: $why"
    else
        ok
    fi
done
for p in ${PENDING[@]+"${PENDING[@]}"}; do echo "pending: $p"; done
[ ${#FAILED[@]} = 0 ] || echo "failed cases: ${FAILED[*]}"
echo "${#PENDING[@]} pending"
finish
