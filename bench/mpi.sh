#!/usr/bin/env bash
# mpi.sh - training samples/s of one process with 2 threads against 2 MPI ranks with 1 thread
# each, on the same model, data and global batch (examples/fashion_mnist/mlp.lua by default),
# for one epoch, REPEATS times; prints medians and the ratio. Run on an otherwise idle machine:
#
#   bench/mpi.sh                      # mlp, 1 repeat
#   bench/mpi.sh examples/fashion_mnist/cnn.lua 3
#
# The ranks are not bound to cores (mpirun's default for 2 ranks binds each to one, where its
# prefetch thread then competes with its compute), as with tkrun --ranks. Both runs see every
# sample of the epoch: the ratio is the speed-up of splitting each batch of 64 into two shards
# of 32 plus one gradient allreduce per step.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
script=${1:-$top/examples/fashion_mnist/mlp.lua} repeats=${2:-1}
build=${BUILD:-$top/build}
mpirun=${MPIEXEC:-mpirun}
[ -x "$build/tkrun-mpi" ] || { echo "no $build/tkrun-mpi: build with Open MPI installed" >&2; exit 2; }
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
rate() { sed -n 's/.* samples\/s \([0-9.]*\) .*/\1/p' "$1/train.log" | head -1; }

for r in $(seq "$repeats"); do
    "$build/tkrun" "$script" --run-dir "$tmp/one.$r" --epochs 1 --threads 2 --quiet >/dev/null
    rate "$tmp/one.$r"
done | median > "$tmp/one"
for r in $(seq "$repeats"); do
    "$mpirun" "${root[@]}" --bind-to none -np 2 "$build/tkrun" "$script" --run-dir "$tmp/two.$r" --epochs 1 \
        --threads 1 --quiet >/dev/null
    rate "$tmp/two.$r"
done | median > "$tmp/two"
one=$(cat "$tmp/one") two=$(cat "$tmp/two")
printf '%s, one epoch, median of %d\n' "$(basename "$script")" "$repeats"
printf '  1 process x 2 threads   %8.0f samples/s\n' "$one"
printf '  2 ranks x 1 thread      %8.0f samples/s\n' "$two"
awk -v a="$one" -v b="$two" 'BEGIN { printf "  2 ranks / 1 process     %8.2f\n", b / a }'
