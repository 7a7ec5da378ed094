# lib.bash - helpers for the CLI end-to-end tests: a scratch directory, expectations on exit
# codes and output, and the "N passed, M failed" summary CTest shows.
set -u
PASS=0
FAIL=0
rm -rf "$TK_TMP" && mkdir -p "$TK_TMP"
cd "$TK_TMP"

ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }

# run CMD...: runs tkrun, keeps stdout in $OUT, stderr in $ERR, exit code in $RC
run() {
    OUT=$("$TKRUN" "$@" 2>"$TK_TMP/stderr") && RC=0 || RC=$?
    ERR=$(cat "$TK_TMP/stderr")
}

expect_rc() { [ "$RC" = "$1" ] && ok || bad "expected exit $1, got $RC (stderr: $ERR)"; }
expect_err() { grep -qF -- "$1" <<<"$ERR" && ok || bad "stderr lacks '$1': $ERR"; }
expect_out() { grep -qF -- "$1" <<<"$OUT" && ok || bad "stdout lacks '$1': $OUT"; }

# expect_ge VALUE MIN LABEL
expect_ge() {
    awk -v v="$1" -v m="$2" 'BEGIN { exit !(v >= m) }' && ok || bad "$3: $1 < $2"
}

finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" = 0 ]
}
