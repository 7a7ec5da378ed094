# NumPy data end to end: iris written by numpy as x.npy/y.npy and as a compressed .npz trains
# exactly like the CSV it came from (same seed: identical metrics); a Fortran-order array, a
# bad header and a missing .npz member fail `tkrun check` with exit 2 naming the file.
source "$(dirname "$0")/lib.bash"
CSV=/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv
/usr/bin/python3 - "$CSV" <<'PY'
import sys
import numpy as np
a = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
np.save("x.npy", a[:, :4])                       # float64
np.save("y.npy", a[:, 4].astype(np.int64))
np.savez_compressed("iris.npz", features=a[:, :4].astype(np.float32), labels=a[:, 4].astype(np.uint8))
np.save("fortran.npy", np.asfortranarray(a[:, :4]))
PY
pipeline() {
    cat <<LUA
local nn, data = tk.nn, tk.data
return tk.pipeline {
  seed = 5,
  data = { train = $1, valid = data.split { fraction = 0.1 }, test = data.split { fraction = 0.2 },
           batch_size = 16, shuffle = true },
  model = nn.sequential { nn.linear(16), nn.relu(), nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 1e-2 },
  epochs = 15,
}
LUA
}
pipeline "data.csv { path = '$CSV', skip_rows = 1, normalize = 'standard' }" > csv.lua
pipeline "data.npy { x = 'x.npy', y = 'y.npy', normalize = 'standard' }" > npy.lua
pipeline "data.npy { npz = 'iris.npz', x = 'features', y = 'labels.npy', normalize = 'standard' }" > npz.lua
values() { cut -d, -f1-6 "$1/metrics.csv"; }
for s in csv npy npz; do
    run $s.lua --run-dir run_$s --quiet
    expect_rc 0
done
diff <(values run_csv) <(values run_npy) >/dev/null && ok ||
    bad "x.npy/y.npy trained differently from the CSV: $(paste -d' ' run_csv/metrics.csv run_npy/metrics.csv | tail -3)"
diff <(values run_csv) <(values run_npz) >/dev/null && ok ||
    bad "the .npz trained differently from the CSV: $(paste -d' ' run_csv/metrics.csv run_npz/metrics.csv | tail -3)"
acc=$(grep ',test,' run_npy/metrics.csv | cut -d, -f5)
expect_ge "$acc" 0.8 "iris from .npy test accuracy"
grep -qE "train +105 samples +\(4,\)" run_npz/note.log && ok || bad "note.log: $(grep samples run_npz/note.log)"

sed 's/x.npy/fortran.npy/' npy.lua > bad.lua
run check bad.lua
expect_rc 2
expect_err "fortran.npy: the array is in Fortran order"
printf '\x93NUMPY\x01\x00\x10\x00{"descr": 3}    \n' > x.npy
run check npy.lua
expect_rc 2
expect_err "x.npy: bad .npy header"
sed 's/labels.npy/targets/' npz.lua > bad.lua
run check bad.lua
expect_rc 2
expect_err "iris.npz: no member 'targets' (or 'targets.npy') in the archive"
finish
