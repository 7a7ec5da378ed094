#!/usr/bin/env bash
# compare.sh - seconds per training epoch of tkrun and PyTorch 1.13 on the same machine, model,
# data, batch and thread budget (examples/fashion_mnist/{mlp,cnn}.lua vs bench/fashion_mnist.py),
# each run REPEATS times; prints medians and the ratio. Run on an otherwise idle machine:
#
#   bench/compare.sh mlp 3 3        # model, epochs per run, repeats
#
# PyTorch runs with torch threads = 1 and OpenBLAS threads = 2 (its fastest setting on a
# 2-core machine); tkrun with --threads 1 and --threads 2.
set -euo pipefail
model=${1:-mlp} epochs=${2:-2} repeats=${3:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
tkrun=${TKRUN:-$top/build/tkrun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for threads in 1 2; do
    for r in $(seq "$repeats"); do
        "$tkrun" "$top/examples/fashion_mnist/$model.lua" --run-dir "$tmp/t$threads.$r" \
            --epochs "$epochs" --threads "$threads" --quiet > /dev/null
        sed -n 's/.* seconds \([0-9.]*\)$/\1/p' "$tmp/t$threads.$r/train.log"
    done | median > "$tmp/tk$threads"
done
for r in $(seq "$repeats"); do
    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 "$top/bench/fashion_mnist.py" "$model" "$epochs" 1 |
        sed -n 's/^epoch [0-9]* seconds \([0-9.]*\).*/\1/p'
done | median > "$tmp/pt"
pt=$(cat "$tmp/pt")
for threads in 1 2; do
    tk=$(cat "$tmp/tk$threads")
    awk -v m="$model" -v t="$threads" -v tk="$tk" -v pt="$pt" 'BEGIN {
        printf "%s: tkrun --threads %d %.2f s/epoch, PyTorch %.2f s/epoch: PyTorch/tkrun = %.2f\n",
               m, t, tk, pt, pt / tk }'
done
