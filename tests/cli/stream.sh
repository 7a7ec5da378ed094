# stream.sh - data.csv{stream = true} end to end on a small generated file (tests/gen_big_csv.c,
# ~400 KB, 4 features, 3 classes): unshuffled it trains to the in-memory run's bytes; shuffled
# runs repeat, and a run interrupted (SIGINT mid-epoch, SIGKILL) or stopped by a read error
# resumes to the straight run's bytes; check prints the streamed split's counts and classes
# the same every time; a malformed row deep in the file, a gzip file and a separate label
# file are refused before anything is written.
source "$(dirname "$0")/lib.bash"
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
rows=$("$TK_GEN_CSV" data.csv 400000 24)

# script NAME STREAM SHUFFLE [VALID]: a small MLP on data.csv
script() {
    local valid=""
    [ -n "${4:-}" ] && valid="valid = data.split { fraction = $4 },"
    cat >"$1.lua" <<LUA
local nn, data = tk.nn, tk.data
local src = data.csv { path = "data.csv", header = true, features = {"f1", "f2", "f3", "f4"},
                       label = "label", normalize = "standard", stream = $2,
                       shard_size = 100, shuffle_buffer = 700 }
return tk.pipeline {
  name = "$1", seed = 11,
  data = { train = src, $valid
           test = data.csv { path = "data.csv", header = true, features = {"f1", "f2", "f3", "f4"},
                             label = "label", stream = $2 },
           batch_size = 64, shuffle = $3 },
  model = nn.sequential { nn.linear(16), nn.relu(), nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 3e-3 },
  epochs = 3,
}
LUA
}
same() { $READER same "$1/checkpoints/final.safetensors" "$2/checkpoints/final.safetensors"; }

# 1. Unshuffled, streamed and in memory are the same run (standard statistics included).
script memory false false
script streamed true false
run memory.lua --run-dir m --quiet
expect_rc 0
run streamed.lua --run-dir s --quiet
expect_rc 0
same m s && ok || bad "unshuffled streamed run differs from the in-memory run"
grep -q "data-wait" s/train.log && ok || bad "train.log has no data-wait"

# 2. Shuffled: the order is a function of (seed, epoch); interrupts resume bit for bit.
script shuffled true true 0.1
run shuffled.lua --run-dir a --quiet
expect_rc 0
run shuffled.lua --run-dir b --quiet
expect_rc 0
same a b && ok || bad "two shuffled streamed runs differ"
same a s && bad "shuffle = true trained like shuffle = false" || ok
steps=$(tail -1 a/train.log | sed 's/.* step \([0-9]*\) .*/\1/')
mid=$((steps / 3 + steps / 6))          # inside epoch 2
TK_TEST_CRASH=int:$mid run shuffled.lua --run-dir i --quiet
expect_rc 130
cursor=$($READER meta i/checkpoints/last.safetensors cursor)
[ "$cursor" -gt 0 ] && ok || bad "SIGINT did not save a mid-epoch cursor ($cursor)"
run shuffled.lua --resume i --quiet
expect_rc 0
same a i && ok || bad "SIGINT mid-epoch + resume differs from the straight run"
TK_TEST_CRASH=step:$((mid + 5)) run shuffled.lua --run-dir k --quiet
expect_rc 137
run shuffled.lua --resume k --quiet
expect_rc 0
same a k && ok || bad "SIGKILL + resume differs from the straight run"

# 3. A read error mid-run (EIO from the 520th pread of 688 on: in epoch 3): exit 1 naming the file, the
#    last checkpoint intact, and --resume ends where the straight run did.
LD_PRELOAD="$TK_FAULT_LIB" ASAN_OPTIONS=verify_asan_link_order=0 \
    TK_FAULT="pread:*/data.csv:520+:EIO" run shuffled.lua --run-dir e --quiet
expect_rc 1
expect_err "data.csv: read error: Input/output error"
epoch=$($READER meta e/checkpoints/last.safetensors epoch)
[ "$epoch" -ge 1 ] && ok || bad "no intact checkpoint after the read error ($epoch)"
run shuffled.lua --resume e --quiet
expect_rc 0
same a e && ok || bad "resume after a read error differs from the straight run"

# 4. check: counts, classes and the CRC of a streamed split, the same every time.
run check shuffled.lua
expect_rc 0
first=$OUT
expect_out "(streamed)"
expect_out "classes  0: "
train=$(sed -n 's/^train *\([0-9]*\) samples.*/\1/p' <<<"$OUT")
valid=$(sed -n 's/^valid *\([0-9]*\) samples.*/\1/p' <<<"$OUT")
[ $((train + valid)) = "$rows" ] && [ "$valid" -gt $((rows / 20)) ] && [ "$valid" -lt $((rows / 5)) ] &&
    ok || bad "split sizes $train + $valid of $rows"
run check shuffled.lua
[ "$OUT" = "$first" ] && ok || bad "check printed something else the second time"
run eval shuffled.lua --weights a --split valid
expect_rc 0
expect_out "valid split, $valid samples"

# 5. Refused before anything is written.
sed '5000s/^\([0-9]*\),[^,]*,/\1,oops,/' data.csv >bad.csv
sed 's/"data.csv"/"bad.csv"/' shuffled.lua >bad.lua
run bad.lua --run-dir never --quiet
expect_rc 2
expect_err "bad.csv:5000: column 2: 'oops' is not a number"
[ ! -e never ] && ok || bad "a refused run wrote its run directory"
gzip -c data.csv >data.csv.gz
sed 's/"data.csv"/"data.csv.gz"/' shuffled.lua >gz.lua
run check gz.lua
expect_rc 2
expect_err "stream = true reads plain files"
cat >labels.lua <<'LUA'
return tk.pipeline {
  data = { train = tk.data.csv { path = "data.csv", header = true, features = {"f1"},
                                 label = tk.data.csv { path = "data.csv", header = true, label = "label" },
                                 stream = true }, batch_size = 8 },
  model = tk.nn.sequential { tk.nn.linear(3) }, loss = "cross_entropy", optimizer = "adam", epochs = 1,
}
LUA
run check labels.lua
expect_rc 2
expect_err "stream = true reads the labels from the same file"
finish
