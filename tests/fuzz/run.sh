#!/usr/bin/env bash
# run.sh TARGET DIR SECONDS RUNS - one libFuzzer campaign of `make fuzz`: lays out the target's
# seeds (fixtures and tests/fuzz/regress/TARGET, with the option bytes the target reads first),
# runs DIR/fuzz_TARGET on DIR/corpus_TARGET for SECONDS or RUNS executions (-1: no limit) with
# its input length limit, and appends the final execution count to DIR/TARGET.log. A finding
# is left as DIR/crash_TARGET-* and fails the run. Not a CI step: campaigns run by hand.
set -euo pipefail
t=$1 dir=$2 seconds=$3 runs=$4
src=$(cd "$(dirname "$0")/../.." && pwd)
seeds=$dir/seeds_$t
rm -rf "$seeds"
mkdir -p "$seeds" "$dir/corpus_$t"
# seed PREFIX FILE...: each file as a seed, after the target's option bytes (octal escapes).
seed() {
    local prefix=$1 f
    shift
    for f in "$@"; do
        [ -f "$f" ] && { printf "$prefix"; head -c 65536 "$f"; } > "$seeds/$(printf %s "$prefix$f" | md5sum | cut -c1-16)"
    done
    return 0
}
dict=()
case $t in
safetensors) max_len=4096; seed '' "$src"/tests/fixtures/*.safetensors ;;
csv) max_len=512
     seed '\000\000' "$src"/tests/bad_inputs/*/*.csv
     seed '\020\000' "$src"/tests/bad_inputs/csv_bom_crlf_header_works/x.csv
     seed '\100\000' "$src"/tests/bad_inputs/_common/d.csv ;;
idx) max_len=512
     printf '\004\000\000\000\010\003\000\000\000\002\000\000\000\002\000\000\000\002\001\002\003\004\005\006\007\010\000\000\010\001\000\000\000\002\001\002' > "$seeds/idx3"
     printf '\004\003\000\000\010\002\000\000\000\002\000\000\000\003\001\002\003\004\005\006\000\000\010\001\000\000\000\002\001\000' > "$seeds/idx2_gz" ;;
image) max_len=4096
       seed '\000' "$src"/tests/fixtures/images/*
       seed '\005' "$src"/tests/fixtures/images/*.jpg ;;
npy) max_len=1024
     seed '\000' "$src"/tests/fixtures/npy/*.npy
     seed '\001' "$src"/tests/fixtures/npy/*.npz ;;
# The Lua state lives across inputs and its collector frees one input's garbage during a
# later one, so libFuzzer's per-input leak check would scan the heap every time (30 runs/s);
# the suite's replay of these targets under ASan (make asan) checks leaks at exit instead.
values) max_len=64; dict=(-dict="$src/tests/fuzz/fuzz_script.dict" -detect_leaks=0)
        for b in 0 1 2 3 4 5 6 7 8; do # pipeline, key (by index), value
            for k in $(seq 0 66); do
                for v in 2 0.5 true; do
                    printf "\\$(printf %03o "$b")\\$(printf %03o "$k")%s" "$v" > "$seeds/$b-$k-$v"
                done
            done
        done ;;
script) max_len=1024; dict=(-dict="$src/tests/fuzz/fuzz_script.dict" -detect_leaks=0)
        seed '' "$src"/tests/fuzz/script_seeds/* ;;
*) echo "run.sh: unknown target '$t'" >&2; exit 2 ;;
esac
if [ -n "$(ls -A "$src/tests/fuzz/regress/$t" 2>/dev/null)" ]; then
    cp "$src/tests/fuzz/regress/$t"/* "$seeds"/
fi
# -entropic=0: the entropic schedule's bookkeeping was half of each execution on these small
# targets; the plain schedule reaches the same coverage here at twice the executions.
log=$dir/$t.full.log
rc=0
"$dir/fuzz_$t" -entropic=0 -max_total_time="$seconds" -runs="$runs" -max_len="$max_len" "${dict[@]}" \
    -print_final_stats=1 -artifact_prefix="$dir/crash_$t-" "$dir/corpus_$t" "$seeds" \
    > "$log" 2>&1 || rc=$?
# a sanitizer report is a finding even where the run went on after it
grep -q 'runtime error:\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer' "$log" && [ "$rc" = 0 ] && rc=1
{
    printf '%s %s: ' "$(date -u +%FT%TZ)" "$t"
    grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units' "$log" | tr '\n' ' '
    [ $rc = 0 ] && echo clean || echo "FAILED (exit $rc, see $log)"
} | tee -a "$dir/$t.log"
exit $rc
