# Image folders end to end: FashionMNIST records written out by this test as PNG class folders
# train exactly like the same records in IDX files (same bytes, same ImageFolder order, same
# seed: identical metrics); a list file of paths and class names; a JPEG set decoded as RGB
# and resized; corrupt and truncated files in a folder fail `tkrun check` with exit 2 naming
# the file.
source "$(dirname "$0")/lib.bash"
SRC=/usr/share/datasets/fashion-mnist
if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
    echo "dataset-fashion-mnist is not installed"; exit 1
fi
# The first 400 train / 200 test records as png/<split>/<label>/<index>.png (a small PNG
# writer: no imaging library needed), the same records in class-sorted order as IDX files,
# and 120 train records as RGB JPEGs (PIL) for the JPEG set.
/usr/bin/python3 - "$SRC" <<'PY'
import gzip, os, struct, sys, zlib
from PIL import Image

def png(path, w, h, pixels):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + pixels[y * w:(y + 1) * w] for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))

def idx(path, dims, body):
    magic = bytes([0, 0, 8, len(dims)]) + struct.pack(">%dI" % len(dims), *dims)
    gzip.open(path, "wb").write(magic + body)

for split, prefix, n in [("train", "train", 400), ("test", "t10k", 200)]:
    images = gzip.open(f"{sys.argv[1]}/{prefix}-images-idx3-ubyte.gz").read()[16:]
    labels = gzip.open(f"{sys.argv[1]}/{prefix}-labels-idx1-ubyte.gz").read()[8:]
    order = sorted(range(n), key=lambda i: (labels[i], i))
    for i in order:
        d = f"png/{split}/{labels[i]}"
        os.makedirs(d, exist_ok=True)
        png(f"{d}/{i:05d}.png", 28, 28, images[i * 784:(i + 1) * 784])
        if split == "train" and i < 120:
            d = f"jpg/{labels[i]}"
            os.makedirs(d, exist_ok=True)
            Image.frombytes("L", (28, 28), images[i * 784:(i + 1) * 784]).convert("RGB").save(
                f"{d}/{i:05d}.jpg", quality=90)
    os.makedirs("idx", exist_ok=True)
    idx(f"idx/{split}-images.gz", [n, 28, 28], b"".join(images[i * 784:(i + 1) * 784] for i in order))
    idx(f"idx/{split}-labels.gz", [n], bytes(labels[i] for i in order))
PY
[ "$(find png/train -name '*.png' | wc -l)" = 400 ] && ok || bad "the PNG folders were not written"

pipeline() { # pipeline TRAIN TEST: the script around two dataset expressions
    cat <<LUA
local nn, data = tk.nn, tk.data
return tk.pipeline {
  seed = 7,
  data = { train = $1, valid = data.split { fraction = 0.1 }, test = $2,
           batch_size = 32, shuffle = true },
  model = nn.sequential { nn.flatten(), nn.linear(64), nn.relu(), nn.linear(10) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 2e-3 },
  epochs = 4,
}
LUA
}
NORM='scale = 1/255, normalize = { mean = 0.2860, std = 0.3530 }'
pipeline "data.images { root = 'png/train', channels = 1, $NORM }" \
         "data.images { root = 'png/test', channels = 1, size = {28, 28}, $NORM }" > png.lua
pipeline "data.idx { images = 'idx/train-images.gz', labels = 'idx/train-labels.gz', $NORM }" \
         "data.idx { images = 'idx/test-images.gz', labels = 'idx/test-labels.gz', $NORM }" > idx.lua

run png.lua --run-dir run_png --quiet
expect_rc 0
grep -qE "train +360 samples +\(1, 28, 28\)" run_png/note.log && ok ||
    bad "note.log data lines: $(grep samples run_png/note.log)"
run idx.lua --run-dir run_idx --quiet
expect_rc 0
diff <(cut -d, -f1-6 run_png/metrics.csv) <(cut -d, -f1-6 run_idx/metrics.csv) >/dev/null && ok ||
    bad "PNG folders and IDX trained differently: $(paste -d' ' run_png/metrics.csv run_idx/metrics.csv)"
acc=$(grep ',test,' run_png/metrics.csv | cut -d, -f5)
expect_ge "$acc" 0.65 "PNG folder test accuracy"
# The class names are the folder names: the test report lists them.
grep -qE "^ *9 " run_png/test_report.txt && ok || bad "test_report.txt: $(head -5 run_png/test_report.txt)"

# tkrun check lists each split's samples per class: the test folder's counts, by folder name.
want=$(for c in 0 1 2 3 4 5 6 7 8 9; do printf '%s %s, ' $c "$(ls png/test/$c | wc -l)"; done)
run check png.lua
expect_rc 0
expect_out "classes  ${want%, }"

# The list form: a CSV of path and class name (sorted names become the class ids).
names=(tshirt trouser pullover dress coat sandal shirt sneaker bag boot)
{ echo "file,kind"; for f in $(find png/test -name '*.png' | sort -r); do
    c=$(basename "$(dirname "$f")"); echo "${f#png/},${names[$c]}"; done; } > png/test.csv
sed "s|test = data.images { root = 'png/test',|test = data.images { list = 'png/test.csv', path_column = 'file', label = 'kind',|" png.lua > list.lua
run list.lua --run-dir run_list --quiet
expect_rc 0
grep -qE "^ *tshirt " run_list/test_report.txt && ok || bad "list classes: $(head -4 run_list/test_report.txt)"
sed "s|root = 'png/test',|size = 28,|" png.lua > none.lua
run check none.lua
expect_rc 2
expect_err "give root (one folder per class) or list (a CSV of path, label)"

# JPEG set: grey images stored as RGB, read as 3 channels resized to 20 x 20.
cat > jpg.lua <<'LUA'
local nn, data = tk.nn, tk.data
return tk.pipeline {
  seed = 3,
  data = { train = data.images { root = "jpg", channels = 3, size = {20, 20}, scale = 1/255 },
           valid = data.split { fraction = 0.25 }, batch_size = 16, shuffle = true },
  model = nn.sequential { nn.conv2d(8, 3, { padding = 1 }), nn.relu(), nn.flatten(), nn.linear(10) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 3e-3 },
  epochs = 5,
}
LUA
run jpg.lua --run-dir run_jpg --quiet
expect_rc 0
grep -qE "train +90 samples +\(3, 20, 20\)" run_jpg/note.log && ok ||
    bad "JPEG note.log: $(grep samples run_jpg/note.log)"
acc=$(tail -1 run_jpg/metrics.csv | cut -d, -f5)
expect_ge "$acc" 0.5 "JPEG set valid accuracy"

# Bad files in a folder: check fails with exit 2 and names the file; nothing is trained.
f=$(find png/train/3 -name '*.png' | sort | head -1)
head -c 200 "$f" > cut.png && mv cut.png "$f"
run check png.lua
expect_rc 2
expect_err "$f: truncated PNG file"
cp "$(find png/train/4 -name '*.png' | sort | head -1)" "$f"
j=$(find jpg -name '*.jpg' | sort | tail -1)
head -c 300 "$j" > cut.jpg && mv cut.jpg "$j"
run check jpg.lua
expect_rc 2
expect_err "$j: truncated JPEG file"
printf 'not an image' > "$j"
run check jpg.lua
expect_rc 2
expect_err "$j: not a PNG or JPEG file"
sed -i 's/size = {20, 20}/size = {20, 20, 3}/' jpg.lua
run check jpg.lua
expect_rc 2
expect_err "size must be {H, W} or one number"
finish
