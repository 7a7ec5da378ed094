-- tk.pipeline (defaults, required parts, cross-checks, user lines through the
-- `return tk.pipeline {...}` tail call), tk.set (coercion, revalidation, group
-- propagation, errors) and tk.describe (deterministic text).
local T = require "tktest"
local tk = T.tk

local dir = T.tmpdir()
T.touch(dir .. "/iris.csv")

-- A valid script; `extra` lines are spliced into the pipeline table.
local function script(extra, data_extra)
    return [[
local nn, data, optim = tk.nn, tk.data, tk.optim
return tk.pipeline {
  data = {
    train = data.csv { "iris.csv", skip_rows = 1 },
    valid = data.split(0.2),
    ]] .. (data_extra or "") .. [[
  },
  model = nn.sequential { nn.linear(16), nn.relu(), nn.linear(3) },
  loss = tk.loss.cross_entropy(),
  optimizer = optim.sgd { lr = 0.1, momentum = 0.9,
    groups = { { match = "*.bias", weight_decay = 0 }, { match = "0.*", lr = 0.01 } } },
  ]] .. (extra or "") .. [[
}
]]
end

local function load_pipeline(extra, data_extra)
    tk.script_dir = dir
    return T.run_file(script(extra, data_extra), dir, "iris.lua")
end

T.test("defaults are filled in", function()
    local p = load_pipeline()
    T.eq(p._kind, "pipeline")
    T.eq(p._where, "iris.lua:2")
    T.eq(p.name, "iris", "name from the script file")
    T.eq({p.seed, p.epochs, p.accumulate, p.on_nonfinite, p.tensorboard}, {0, 10, 1, "stop", true})
    T.eq(p.metrics, {"accuracy"})
    T.eq({p.data.batch_size, p.data.shuffle, p.data.drop_last}, {32, true, false})
    T.eq(p.data.test, nil)
    T.eq(p.schedule.type, "constant")
    T.eq(p.save, {best = {monitor = "valid.loss", mode = "min"}, last = true})
    T.eq(p.early_stop, nil)
    T.eq({p.clip_grad_norm, p.clip_grad_value, p.max_skips, p.init, p.threads, p.log_every}, {})
end)

T.test("options are resolved", function()
    T.touch(dir .. "/w.safetensors")
    local p = load_pipeline([[
  name = "run1", seed = 7, epochs = 3, metrics = { "accuracy", "top2", "f1" },
  clip_grad_norm = 1, accumulate = 2, on_nonfinite = "skip", max_skips = 5,
  save = { best = "valid.f1", every = 2, keep = 3 },
  early_stop = { monitor = "valid.accuracy", patience = 4 },
  init = { path = "w.safetensors", rename = { ["old.*"] = "new.*" } },
  schedule = tk.sched.reduce_on_plateau { monitor = "train.loss" },
]], "batch_size = 16, drop_last = true,")
    T.eq(p.name, "run1")
    T.eq(p.metrics, {"accuracy", "top2", "f1"})
    T.eq(p.clip_grad_norm, 1.0)
    T.eq(p.save, {best = {monitor = "valid.f1", mode = "max"}, every = 2, keep = 3, last = true})
    T.eq(p.early_stop, {monitor = "valid.accuracy", mode = "max", patience = 4, min_delta = 0.0, restore_best = false})
    T.eq(p.init, {path = dir .. "/w.safetensors", rename = {["old.*"] = "new.*"}, strict = false})
    T.eq({p.data.batch_size, p.data.drop_last}, {16, true})
end)

T.test("regression losses default to regression metrics", function()
    tk.script_dir = dir
    local src = script():gsub("tk%.loss%.cross_entropy%(%)", "tk.loss.mse()")
    T.eq(T.run_file(src, dir, "reg.lua").metrics, {"mae", "rmse"})
    T.errors(function() T.run_file(script("metrics = {'accuracy'},"):gsub("cross_entropy", "mse"), dir, "reg.lua") end,
        "metric 'accuracy' needs a classification loss; loss.mse is a regression loss")
    T.errors(function() load_pipeline("metrics = {'r2'},") end, "metric 'r2' needs a regression loss")
end)

-- The key's own line, found in the script's text (a nested plain table has no line).
T.test("errors point at the user's line through the tail call", function()
    T.errors(function() load_pipeline("epoch = 3,") end,
        "pipeline: unknown key 'epoch' (did you mean 'epochs'?)", dir .. "/iris.lua:11: ")
    T.errors(function() load_pipeline("", "batchsize = 3,") end,
        "data: unknown key 'batchsize' (did you mean 'batch_size'?)", dir .. "/iris.lua:6: ")
    T.errors(function() load_pipeline("save = {\n every = 0 },") end,
        "save: every must be a positive integer, got 0", dir .. "/iris.lua:12: ")
    T.errors(function() load_pipeline("", "shuffle = 1,") end,
        "data: shuffle must be true or false, got 1", dir .. "/iris.lua:6: ")
    T.errors(function() load_pipeline("epochs = -1,") end, "pipeline: epochs must be a positive integer, got -1")
    T.errors(function() load_pipeline("loss = 3,") end, "pipeline: loss must be a loss (e.g. tk.loss.cross_entropy{}), got 3")
end)

T.test("errors in a non-tail pipeline call name its line", function()
    tk.script_dir = dir
    local err = T.errors(function()
        T.run("local d = tk.data.csv{'iris.csv'}\nlocal p = tk.pipeline {\n  data = {train = d},\n}\nreturn p")
    end, "pipeline: model is required")
    T.ok(err:find("^mlp%.lua:2: "), err)
end)

T.test("required parts and wrong kinds", function()
    tk.script_dir = dir
    local function run(src) return T.run("local d = tk.data.csv{'iris.csv'}\nlocal p = " .. src .. "\nreturn p") end
    T.errors(function() run("tk.pipeline { model = tk.nn.linear(3), loss = tk.loss.mse(), optimizer = tk.optim.adam() }") end,
        "pipeline: data is required")
    T.errors(function() run("tk.pipeline { data = {}, model = tk.nn.linear(3), loss = tk.loss.mse(), optimizer = tk.optim.adam() }") end,
        "data: train is required")
    T.errors(function() run("tk.pipeline { data = {train = d}, model = tk.nn.linear(3), loss = tk.loss.mse, optimizer = tk.optim.adam() }") end,
        "loss must be a loss (e.g. tk.loss.cross_entropy{}), got a function; did you forget to call it? write tk.loss.mse{}")
    T.errors(function() run("tk.pipeline { data = {train = d}, model = {tk.nn.linear(3)}, loss = tk.loss.mse(), optimizer = tk.optim.adam() }") end,
        "model must be an nn layer (e.g. nn.sequential{...}), got a table")
    T.errors(function() run("tk.pipeline { data = {train = tk.data.split(0.1)}, model = tk.nn.linear(3), loss = tk.loss.mse(), optimizer = tk.optim.adam() }") end,
        "data: train cannot be a data.split")
    T.errors(function() run("tk.pipeline { data = {train = d}, model = tk.nn.linear(3), loss = tk.loss.mse(), optimizer = tk.optim.adam(), metrics = {'acuracy'} }") end,
        "metrics[1] must be one of accuracy, precision, recall, f1, confusion, mae, rmse, r2, exact_match or top<K>, got 'acuracy' (did you mean 'accuracy'?)")
end)

T.test("cross-checks", function()
    T.errors(function() load_pipeline("early_stop = { monitor = 'valid.f1' },") end,
        "early_stop: monitor 'valid.f1' needs 'f1' in metrics")
    T.errors(function() load_pipeline("save = { best = 'valid.confusion' }, metrics = {'accuracy', 'confusion'},") end,
        "the confusion matrix is not a single number")
    T.errors(function() load_pipeline("max_skips = 3,") end, "max_skips needs on_nonfinite = 'skip'")
    T.errors(function() load_pipeline("save = { keep = 3 },") end, "save: keep counts the every-N checkpoints, so it needs every")
    T.errors(function() load_pipeline("", "test = data.split(0.8),") end, "valid and test splits take the whole training set")
    T.errors(function() load_pipeline("init = 'missing.safetensors',") end, "init: weights file 'missing.safetensors' not found")
    T.errors(function() load_pipeline("init = { path = 'iris.csv', rename = { ['a.*'] = 'b' } },") end,
        "rename['a.*'] has 1 '*' but 'b' has 0")
    -- without valid data there is no best checkpoint, and valid.* monitors are refused
    local src = script():gsub("valid = data%.split%(0%.2%),", "")
    tk.script_dir = dir
    T.eq(T.run_file(src, dir, "nv.lua").save.best, false)
    T.errors(function() T.run_file(src:gsub("optimizer =", "schedule = tk.sched.reduce_on_plateau(),\n  optimizer ="), dir, "nv.lua") end,
        "sched.reduce_on_plateau: monitor 'valid.loss' needs data.valid (or monitor 'train.loss')")
end)

T.test("graph functions are traced when the pipeline is built", function()
    local err = T.errors(function()
        load_pipeline("model = nn.graph(function(x)\n    return x - x\n  end),")
    end, "'-' is not supported on graph tensors")
    T.ok(err:find("iris.lua:12: ", 1, true), err)
end)

T.test("tk.set: values are coerced by the schema's type", function()
    local p = load_pipeline()
    tk.set(p, "epochs", "20")
    T.eq(p.epochs, 20)
    tk.set(p, "data.shuffle", "false")
    T.eq(p.data.shuffle, false)
    tk.set(p, "metrics", "accuracy,f1")
    T.eq(p.metrics, {"accuracy", "f1"})
    tk.set(p, "clip_grad_norm", "0.5")
    T.eq(p.clip_grad_norm, 0.5)
    tk.set(p, "clip_grad_norm", "nil")
    T.eq(p.clip_grad_norm, nil)
    tk.set(p, "loss.label_smoothing", "0.1")
    T.eq(p.loss.attrs.label_smoothing, 0.1)
    tk.set(p, "data.train.skip_rows", "2")
    T.eq(p.data.train.skip_rows, 2)
    T.eq(p.data.train.path, dir .. "/iris.csv")
    tk.set(p, "save.best", "valid.accuracy")
    T.eq(p.save.best, {monitor = "valid.accuracy", mode = "max"})
    tk.set(p, "early_stop.patience", "3")
    T.eq(p.early_stop, {monitor = "valid.loss", mode = "min", patience = 3, min_delta = 0.0, restore_best = false})
    tk.set(p, "early_stop.monitor", "valid.f1")
    T.eq(p.early_stop.mode, "max", "an inferred mode follows the new monitor")
    T.eq(tk.set(p, "seed", 5), p, "returns the pipeline; Lua values are taken as they are")
    T.eq(p.seed, 5)
end)

T.test("tk.set: the optimizer's lr reaches groups that did not set their own", function()
    local p = load_pipeline()
    tk.set(p, "optimizer.lr", "3e-4")
    T.eq(p.optimizer.lr, 3e-4)
    T.eq(p.optimizer.groups[1].lr, 3e-4)
    T.eq(p.optimizer.groups[2].lr, 0.01)
    tk.set(p, "optimizer.groups.1.lr", "0.5")
    T.eq(p.optimizer.groups[1].lr, 0.5)
    T.eq(p.optimizer.groups[1]._explicit, {lr = true, weight_decay = true})
    tk.set(p, "optimizer.lr", "0.2")
    T.eq(p.optimizer.groups[1].lr, 0.5)
    tk.set(p, "optimizer.momentum", "0.5")
    T.eq({p.optimizer.groups[1].momentum, p.optimizer.groups[2].momentum}, {0.5, 0.5})
end)

T.test("tk.set: errors", function()
    local p = load_pipeline()
    local function fails(key, value, text) T.errors(function() tk.set(p, key, value) end, text, "--set " .. key .. ": ") end
    fails("optimizer.learing_rate", "1", "--set optimizer.learing_rate: unknown key 'learing_rate' (did you mean 'lr'?)")
    fails("epoch", "3", "unknown key 'epoch' (did you mean 'epochs'?)")
    fails("optimizer.lr", "fast", "lr must be a number >= 0, got 'fast'")
    fails("optimizer.lr", "-1", "lr must be a number >= 0, got -1")
    fails("epochs", "2.5", "epochs must be a positive integer, got 2.5")
    fails("data.shuffle", "yes", "shuffle must be true or false, got 'yes'")
    tk.set(p, "optimizer.nesterov", "true")
    fails("optimizer.momentum", "0", "optim.sgd: nesterov requires momentum > 0")
    fails("optimizer.groups.3.lr", "1", "groups has 2 entries; '3' is not one of them")
    fails("optimizer.groups.1.betas", "0.9,0.99", "unknown key 'betas'")
    fails("model.0.out_features", "5", "the model cannot be changed from the command line")
    fails("optimizer", "adam", "optimizer is a table; set one of its options instead")
    fails("epochs.x", "1", "'epochs' has no options")
    fails("metrics", "accuracy,f2", "metrics[2] must be one of")
    fails("early_stop.monitor", "valid.f1", "early_stop: monitor 'valid.f1' needs 'f1' in metrics")
    fails("optimizer..lr", "1", "malformed key")
    fails("data.train.path", "nope.csv", "data.csv: path file 'nope.csv' not found")
    T.eq(p.optimizer.lr, 0.1, "a failed --set leaves the pipeline as it was")
    T.eq(p.early_stop, nil)
end)

T.test("tk.describe is deterministic and complete", function()
    local a = tk.describe(load_pipeline())
    local b = tk.describe(load_pipeline())
    T.eq(a, b)
    T.ok(a:find("^pipeline %(iris%.lua:2%)\n"), a)
    T.ok(a:find("\nepochs: 10\n", 1, true), a)
    T.ok(a:find("\n  #2 1 = relu() <- #1  (iris.lua:7)\n", 1, true), a)
    T.ok(a:find("\n  groups:\n    [1]: (iris.lua:9)\n", 1, true), a)
    T.ok(a:find("\n      match: [*.bias]\n", 1, true), a)
    T.ok(a:find("\nloss: loss.cross_entropy (iris.lua:8)\n  ignore_index: -100\n", 1, true), a)
    T.ok(not a:find("_explicit", 1, true) and not a:find("_kind", 1, true), "no internals")
    -- keys come out sorted
    local prev
    for key in a:gmatch("\n(%a[%w_]*):") do
        T.ok(not prev or prev < key, key .. " after " .. tostring(prev))
        prev = key
    end
end)

os.execute("rm -rf '" .. dir .. "'")
T.done()
