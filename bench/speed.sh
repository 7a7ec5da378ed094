#!/usr/bin/env bash
# speed.sh - tkrun against PyTorch 1.13 on this machine: the same FashionMNIST model, data,
# split, batch and optimizer, runs alternating between the two, ROUNDS rounds, medians.
#
#   bench/speed.sh [ROUNDS]          (default 3; run on an otherwise idle machine)
#
# Rows: MLP 784-512-512-10 with SGD at batch 16/64/256 and Adam at 64, the CNN of
# examples/fashion_mnist/cnn.lua with Adam at 64 (one training epoch each, the train pass as
# both sides time it), one eval pass over the 10k test images (MLP and CNN), peak RSS of the
# runs, each epoch against the time of its matrix products alone (bench/gemm_bound, measured
# here in the same run) and `tkrun check` start-up on a tiny data file. PyTorch runs at its
# fastest setting on 2 cores (torch threads 1, OpenBLAS threads 2), tkrun with --threads 2.
# Prints a markdown table (the README's speed table is one whole run of this script).
set -euo pipefail
rounds=${1:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
tkrun=$build/tkrun bound=$build/gemm_bound
threads=${THREADS:-2}
/usr/bin/python3 -c 'import torch' 2> /dev/null ||
    { echo "speed.sh: PyTorch is missing (apt-get install -y python3-torch)" >&2; exit 1; }
for f in "$tkrun" "$bound"; do
    [ -x "$f" ] || { echo "speed.sh: $f is not built (make build)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
IDX=/usr/share/datasets/fashion-mnist

# script MODEL OPTIM BATCH: the tkrun twin of bench/fashion_mnist.py
script() {
    local model optim
    if [ "$1" = mlp ]; then
        model='nn.flatten(), nn.linear(784, 512), nn.relu(), nn.linear(512, 512), nn.relu(), nn.linear(512, 10)'
    else
        model='nn.conv2d(1, 32, 3, 1, 1), nn.relu(), nn.max_pool2d(2), nn.conv2d(32, 64, 3, 1, 1), nn.relu(), nn.max_pool2d(2), nn.flatten(), nn.linear(3136, 128), nn.relu(), nn.dropout(0.25), nn.linear(128, 10)'
    fi
    if [ "$2" = sgd ]; then optim='tk.optim.sgd(0.01)'; else optim='tk.optim.adam(1e-3)'; fi
    cat <<LUA
local nn, data = tk.nn, tk.data
local norm = { mean = 0.2860, std = 0.3530 }
return tk.pipeline {
  seed = 6666,
  data = {
    train = data.idx { "$IDX/train-images-idx3-ubyte.gz", "$IDX/train-labels-idx1-ubyte.gz", scale = 1/255, normalize = norm },
    valid = data.split(0.1),
    test = data.idx { "$IDX/t10k-images-idx3-ubyte.gz", "$IDX/t10k-labels-idx1-ubyte.gz", scale = 1/255, normalize = norm },
    batch_size = $3, shuffle = true,
  },
  model = nn.sequential { $model },
  loss = tk.loss.cross_entropy {},
  optimizer = $optim,
  epochs = 1,
  save = { best = false, last = false },
  tensorboard = false,
}
LUA
}

rows="mlp:sgd:64 mlp:adam:64 mlp:sgd:16 mlp:sgd:256 cnn:adam:64"
for row in $rows; do
    IFS=: read -r model optim batch <<<"$row"
    script "$model" "$optim" "$batch" > "$tmp/$model-$optim-$batch.lua"
done

# Each run appends: train seconds, eval seconds, peak RSS (KiB).
for r in $(seq "$rounds"); do
    for row in $rows; do
        IFS=: read -r model optim batch <<<"$row"
        name=$model-$optim-$batch
        dir=$tmp/run-$name-$r
        /usr/bin/time -f %M -o "$tmp/rss" "$tkrun" "$tmp/$name.lua" --run-dir "$dir" \
            --threads "$threads" --quiet > /dev/null
        echo "$(sed -n 's/^epoch 1\/1 .* seconds \([0-9.]*\)$/\1/p' "$dir/train.log") \
$(sed -n 's/^test .* seconds \([0-9.]*\)$/\1/p' "$dir/valid.log") $(cat "$tmp/rss")" \
            >> "$tmp/tk-$name"
        OPENBLAS_NUM_THREADS=$threads /usr/bin/time -f %M -o "$tmp/rss" /usr/bin/python3 \
            "$top/bench/fashion_mnist.py" "$model" 1 1 "$optim" "$batch" > "$tmp/pt.out"
        echo "$(sed -n 's/^epoch 1 seconds \([0-9.]*\)/\1/p' "$tmp/pt.out") \
$(sed -n 's/^eval seconds \([0-9.]*\)/\1/p' "$tmp/pt.out") $(cat "$tmp/rss")" >> "$tmp/pt-$name"
        "$bound" "$tmp/$name.lua" "$threads" >> "$tmp/bound-$name"
    done
done

col() { awk -v c="$2" '{print $c}' "$1" | median; }
printf '| work (FashionMNIST, one epoch, %d threads, %d rounds, medians) | tkrun s | PyTorch s | PyTorch/tkrun | tkrun samples/s | epoch / gemm-only | peak RSS tkrun/PyTorch |\n' "$threads" "$rounds"
echo '|---|---|---|---|---|---|---|'
for row in $rows; do
    IFS=: read -r model optim batch <<<"$row"
    name=$model-$optim-$batch
    tk=$(col "$tmp/tk-$name" 1) pt=$(col "$tmp/pt-$name" 1)
    gemm=$(awk '{print $2}' "$tmp/bound-$name" | median)
    rk=$(col "$tmp/tk-$name" 3) rp=$(col "$tmp/pt-$name" 3)
    awk -v n="$model $optim batch $batch" -v tk="$tk" -v pt="$pt" -v g="$gemm" -v rk="$rk" \
        -v rp="$rp" 'BEGIN { printf "| %s | %.2f | %.2f | **%.2f** | %.0f | %.2f | %.2f (%.0f / %.0f MiB) |\n",
        n, tk, pt, pt / tk, 54000 / tk, tk / g, rk / rp, rk / 1024, rp / 1024 }'
done
for model in mlp cnn; do
    name=$model-$( [ $model = mlp ] && echo sgd || echo adam )-64
    tk=$(col "$tmp/tk-$name" 2) pt=$(col "$tmp/pt-$name" 2)
    gemm=$(awk '{print $4}' "$tmp/bound-$name" | median)
    awk -v n="$model eval pass, 10k test images, batch 64" -v tk="$tk" -v pt="$pt" -v g="$gemm" \
        'BEGIN { printf "| %s | %.3f | %.3f | **%.2f** | %.0f | %.2f | |\n", n, tk, pt, pt / tk,
        10000 / tk, tk / g }'
done

# start-up: tkrun check on the MLP with 8 rows of data (the data load is then negligible)
awk 'BEGIN { srand(1); for (r = 0; r < 8; r++) { for (c = 0; c < 784; c++) printf "%d,", int(rand() * 255); print r % 10 } }' \
    > "$tmp/tiny.csv"
cat > "$tmp/check.lua" <<LUA
local nn = tk.nn
return tk.pipeline {
  data = { train = tk.data.csv "$tmp/tiny.csv", batch_size = 4 },
  model = nn.sequential { nn.linear(784, 512), nn.relu(), nn.linear(512, 512), nn.relu(), nn.linear(512, 10) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd(0.01),
}
LUA
for i in $(seq 11); do
    s=$(date +%s.%N)
    "$tkrun" check "$tmp/check.lua" > /dev/null
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN { print (e - s) * 1000 }'
done | median | awk '{ printf "| `tkrun check` on the MLP (8-row CSV) | %.1f ms | | | | | |\n", $1 }'
