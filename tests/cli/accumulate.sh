# Gradient accumulation: accumulate = 4 with batch_size 4 takes the same SGD steps as batch
# size 16 (no momentum, no shuffle, no dropout); clip_grad_norm and a schedule run end to end
# and show in the logs.
source "$(dirname "$0")/lib.bash"
READER="/usr/bin/python3 $TK_SRC/tests/safetensors_reader.py"
/usr/bin/python3 - <<'PY'
import random
random.seed(3)
with open("blobs.csv", "w") as f:
    f.write("a,b,c,label\n")
    for i in range(64):
        c = i % 3
        f.write(f"{random.gauss(c, 0.7):.4f},{random.gauss(-c, 0.7):.4f},{random.gauss(0, 1):.4f},{c}\n")
PY
cat > acc.lua <<'LUA'
return tk.pipeline {
  seed = 2,
  data = { train = tk.data.csv { path = "blobs.csv", header = true },
           batch_size = 16, shuffle = false },
  model = tk.nn.sequential { tk.nn.linear(8), tk.nn.relu(), tk.nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
  epochs = 3,
}
LUA
run acc.lua --run-dir big --quiet
expect_rc 0
run acc.lua --run-dir small --quiet --set data.batch_size=4 --set accumulate=4
expect_rc 0
[ "$(tail -1 big/train.log | cut -d' ' -f3-4)" = "step 12" ] && ok || bad "batch 16: $(tail -1 big/train.log)"
[ "$(tail -1 small/train.log | cut -d' ' -f3-4)" = "step 12" ] && ok || bad "accumulate 4: $(tail -1 small/train.log)"
$READER close big/checkpoints/final.safetensors small/checkpoints/final.safetensors 1e-5 && ok ||
    bad "accumulate=4 x batch 4 differs from batch 16"
run acc.lua --run-dir plain4 --quiet --set data.batch_size=4
$READER close big/checkpoints/final.safetensors plain4/checkpoints/final.safetensors 1e-3 \
    >/dev/null && bad "batch 4 without accumulation should differ" || ok

# Clipping and a warmup + cosine schedule: the lr column follows the schedule.
sed 's/  epochs = 3,/  epochs = 3, schedule = tk.sched.cosine { warmup_steps = 2, warmup_start_factor = 0.1 },/' \
    acc.lua > sched.lua
run sched.lua --run-dir sched --quiet --set clip_grad_norm=0.5
expect_rc 0
lrs=$(grep ',train,' sched/metrics.csv | cut -d, -f6 | tr '\n' ' ')
[ "$lrs" != "0.1 0.1 0.1 " ] && ok || bad "the schedule did not change the lr: $lrs"
finish
