# stream_images.sh - data.images{stream = true}, folder and list forms, on 300 small PNGs this
# test writes (3 classes of noisy stripes): unshuffled, with augmentation, a streamed folder
# trains to the in-memory folder's bytes; a shuffled streamed list repeats, and resumes from a
# mid-epoch SIGINT to the straight run's bytes; check prints the streamed split's counts, and
# a corrupt image deep in the list is an error at check naming the file.
source "$(dirname "$0")/lib.bash"
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
/usr/bin/python3 - <<'PY'
import os, random, struct, zlib

def png(path, w, h, pixels):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + pixels[y * w:(y + 1) * w] for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))

rnd = random.Random(3)
with open("list.csv", "w") as lst:
    lst.write("path,label\n")
    for i in range(300):
        c = i % 3
        px = bytes(min(255, (200 if (x + c * y) % 3 == 0 else 30) + rnd.randrange(40))
                   for y in range(12) for x in range(12))
        os.makedirs(f"img/{'abc'[c]}", exist_ok=True)
        png(f"img/{'abc'[c]}/{i:04d}.png", 12, 12, px)
        lst.write(f"img/{'abc'[c]}/{i:04d}.png,{'abc'[c]}\n")
PY
script() { # script NAME SOURCE SHUFFLE
    cat >"$1.lua" <<LUA
local nn, data = tk.nn, tk.data
return tk.pipeline {
  name = "$1", seed = 4,
  data = { train = $2, valid = data.split { fraction = 0.2 }, batch_size = 16, shuffle = $3 },
  model = nn.sequential { nn.flatten(), nn.linear(32), nn.relu(), nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 3e-3 },
  epochs = 3,
}
LUA
}
same() { $READER same "$1/checkpoints/final.safetensors" "$2/checkpoints/final.safetensors"; }
opts='channels = 1, scale = 1/255, normalize = { mean = 0.4, std = 0.3 },
      augment = { data.random_crop { padding = 2 }, data.random_flip {} }'

# 1. Unshuffled (no split: a streamed split is drawn per row), streamed = in memory.
for mode in false true; do
    cat >folder_$mode.lua <<LUA
local nn, data = tk.nn, tk.data
return tk.pipeline {
  name = "f", seed = 4,
  data = { train = data.images { root = "img", $opts, stream = $mode, shard_size = 10,
                                 shuffle_buffer = 50 }, batch_size = 16, shuffle = false },
  model = nn.sequential { nn.flatten(), nn.linear(32), nn.relu(), nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 3e-3 },
  epochs = 3,
}
LUA
done
run folder_false.lua --run-dir fm --quiet
expect_rc 0
run folder_true.lua --run-dir fs --quiet
expect_rc 0
same fm fs && ok || bad "unshuffled streamed folder differs from the in-memory folder"

# 2. A shuffled streamed list: repeats, and resumes mid-epoch bit for bit.
script list 'data.images { list = "list.csv", '"$opts"', stream = true, shard_size = 10, shuffle_buffer = 50 }' true
run list.lua --run-dir a --quiet
expect_rc 0
run list.lua --run-dir b --quiet
same a b && ok || bad "two shuffled streamed list runs differ"
TK_TEST_CRASH=int:20 run list.lua --run-dir i --quiet
expect_rc 130
[ "$($READER meta i/checkpoints/last.safetensors cursor)" -gt 0 ] && ok || bad "no mid-epoch cursor"
run list.lua --resume i --quiet
expect_rc 0
same a i && ok || bad "SIGINT mid-epoch + resume of a streamed list differs"

# 3. check: counts and classes of the streamed split; a corrupt image deep in the list.
run check list.lua
expect_rc 0
expect_out "(streamed)"
expect_out "classes  a "
t=$(sed -n 's/^train *\([0-9]*\) samples.*/\1/p' <<<"$OUT")
v=$(sed -n 's/^valid *\([0-9]*\) samples.*/\1/p' <<<"$OUT")
[ $((t + v)) = 300 ] && [ "$v" -gt 30 ] && [ "$v" -lt 90 ] && ok || bad "split sizes $t + $v"
head -c 60 img/b/0250.png >img/b/0250.png.cut && mv img/b/0250.png.cut img/b/0250.png
run check list.lua
expect_rc 2
expect_err "0250.png"
finish
