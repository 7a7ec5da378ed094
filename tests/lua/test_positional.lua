-- Positional arguments read the way PyTorch reads them, and none is ever dropped: every
-- public constructor of every module is walked, and each PyTorch positional form is checked
-- against the fields it must set.
local T = require "tktest"
local S = require "tk.schema"
local tk = T.tk
local nn, loss, optim, sched, data = tk.nn, tk.loss, tk.optim, tk.sched, tk.data

-- Namespace functions that are not option-taking constructors, each checked on its own below.
local not_constructors = {
    [nn.lower] = true, [nn.is_layer] = true, [nn.sequential] = true, [nn.residual] = true,
    [nn.concat] = true, [data.resolve] = true,
}

T.test("every public constructor refuses a positional value no form reads", function()
    local walked = 0
    for _, ns in ipairs{"nn", "loss", "optim", "sched", "data"} do
        for _, name in ipairs(S.sorted_keys(tk[ns])) do
            local f = tk[ns][name]
            if type(f) == "function" and not not_constructors[f] then
                local spec = S.public[f]
                T.ok(spec, "tk." .. ns .. "." .. name .. " is registered in S.public")
                local max, variadic = 0, false
                for _, form in ipairs(spec.forms) do
                    max = math.max(max, #form)
                    variadic = variadic or form.variadic
                end
                if not variadic then
                    local args = {}
                    for i = 1, max + 1 do args[i] = 100 + i end
                    local err = T.errors(function() f(table.unpack(args)) end,
                        string.format("%s: unexpected positional argument #%d (%d); accepted forms: ",
                            spec.name, max + 1, 100 + max + 1))
                    T.ok(err:find(S.forms_text(spec), 1, true), "the forms are listed: " .. err)
                    -- the same values as the array part of one table (unless a lone list is the
                    -- value of a list field, as in loss.cross_entropy({1, 2}))
                    local first = spec.forms[1] and spec.by_name[spec.forms[1][1]].type
                    if not (first and (first.list_valued or first.pair_valued)) then
                        T.errors(function() f(args) end, string.format("unexpected positional argument #%d", max + 1))
                    end
                end
                walked = walked + 1
            end
        end
    end
    T.ok(walked >= 45, "walked " .. walked .. " constructors")
end)

-- {constructor call, fields it must set}: PyTorch's positional meaning, e.g.
-- torch.nn.Linear(13, 32) is in_features=13, out_features=32.
local cases = {
    {"nn.linear(32)", function() return nn.linear(32) end, {out_features = 32, bias = true}},
    {"nn.linear(13, 32)", function() return nn.linear(13, 32) end, {in_features = 13, out_features = 32}},
    {"nn.linear(13, 32, false)", function() return nn.linear(13, 32, false) end,
        {in_features = 13, out_features = 32, bias = false}},
    {"nn.linear(13, 32, {bias = false})", function() return nn.linear(13, 32, {bias = false}) end,
        {in_features = 13, out_features = 32, bias = false}},
    {"nn.linear{13, 32}", function() return nn.linear{13, 32} end, {in_features = 13, out_features = 32}},
    {"nn.conv2d(32, 3)", function() return nn.conv2d(32, 3) end,
        {out_channels = 32, kernel_size = {3, 3}, in_channels = nil}},
    {"nn.conv2d(1, 32, 3)", function() return nn.conv2d(1, 32, 3) end,
        {in_channels = 1, out_channels = 32, kernel_size = {3, 3}, stride = {1, 1}, padding = {0, 0}}},
    {"nn.conv2d(1, 32, 3, 2, 1)", function() return nn.conv2d(1, 32, 3, 2, 1) end,
        {in_channels = 1, out_channels = 32, stride = {2, 2}, padding = {1, 1}}},
    {"nn.conv2d(4, 8, {3, 5}, 1, 0, 2, 2, false)", function() return nn.conv2d(4, 8, {3, 5}, 1, 0, 2, 2, false) end,
        {kernel_size = {3, 5}, dilation = {2, 2}, groups = 2, bias = false}},
    {"nn.conv2d(1, 32, 3, {padding = 1})", function() return nn.conv2d(1, 32, 3, {padding = 1}) end,
        {in_channels = 1, padding = {1, 1}}},
    {"nn.max_pool2d(2)", function() return nn.max_pool2d(2) end, {kernel_size = {2, 2}, stride = {2, 2}}},
    {"nn.max_pool2d(3, 2, 1)", function() return nn.max_pool2d(3, 2, 1) end,
        {kernel_size = {3, 3}, stride = {2, 2}, padding = {1, 1}}},
    {"nn.avg_pool2d(3, 1, 1, true, false)", function() return nn.avg_pool2d(3, 1, 1, true, false) end,
        {kernel_size = {3, 3}, stride = {1, 1}, padding = {1, 1}, ceil_mode = true, count_include_pad = false}},
    {"nn.adaptive_avg_pool2d({7, 7})", function() return nn.adaptive_avg_pool2d({7, 7}) end, {output_size = {7, 7}}},
    {"nn.adaptive_avg_pool2d(1)", function() return nn.adaptive_avg_pool2d(1) end, {output_size = {1, 1}}},
    {"nn.batch_norm1d(32)", function() return nn.batch_norm1d(32) end, {num_features = 32, eps = 1e-5}},
    {"nn.batch_norm2d(16, 1e-3, 0.01, false)", function() return nn.batch_norm2d(16, 1e-3, 0.01, false) end,
        {num_features = 16, eps = 1e-3, momentum = 0.01, affine = false}},
    {"nn.layer_norm(64)", function() return nn.layer_norm(64) end, {normalized_shape = {64}}},
    {"nn.layer_norm({28, 28})", function() return nn.layer_norm({28, 28}) end, {normalized_shape = {28, 28}}},
    {"nn.layer_norm({28, 28}, 1e-6, false)", function() return nn.layer_norm({28, 28}, 1e-6, false) end,
        {normalized_shape = {28, 28}, eps = 1e-6, elementwise_affine = false}},
    {"nn.dropout(0.2)", function() return nn.dropout(0.2) end, {p = 0.2}},
    {"nn.dropout2d(0.1)", function() return nn.dropout2d(0.1) end, {p = 0.1}},
    {"nn.leaky_relu(0.2)", function() return nn.leaky_relu(0.2) end, {negative_slope = 0.2}},
    {"nn.elu(0.5)", function() return nn.elu(0.5) end, {alpha = 0.5}},
    {"nn.gelu('tanh')", function() return nn.gelu("tanh") end, {approximate = "tanh"}},
    {"nn.softplus(2, 10)", function() return nn.softplus(2, 10) end, {beta = 2.0, threshold = 10.0}},
    {"nn.hardtanh(-2, 2)", function() return nn.hardtanh(-2, 2) end, {min_val = -2.0, max_val = 2.0}},
    {"nn.softmax(1)", function() return nn.softmax(1) end, {dim = 1}},
    {"nn.log_softmax(-1)", function() return nn.log_softmax(-1) end, {dim = -1}},
    {"nn.flatten(2, 3)", function() return nn.flatten(2, 3) end, {start_dim = 2, end_dim = 3}},
    {"nn.reshape(1, 28, 28)", function() return nn.reshape(1, 28, 28) end, {shape = {1, 28, 28}}},
    {"nn.reshape({-1, 7})", function() return nn.reshape({-1, 7}) end, {shape = {-1, 7}}},
    {"loss.cross_entropy({1, 2, 3})", function() return loss.cross_entropy({1, 2, 3}).attrs end,
        {weight = {1.0, 2.0, 3.0}, ignore_index = -100}},
    {"loss.nll({1, 2})", function() return loss.nll({1, 2}).attrs end, {weight = {1.0, 2.0}}},
    {"loss.huber('sum', 2)", function() return loss.huber("sum", 2).attrs end, {reduction = "sum", delta = 2.0}},
    {"optim.sgd(0.1, 0.9, 0, 1e-4, true)", function() return optim.sgd(0.1, 0.9, 0, 1e-4, true) end,
        {lr = 0.1, momentum = 0.9, dampening = 0.0, weight_decay = 1e-4, nesterov = true}},
    {"optim.adam(1e-3, {0.8, 0.99}, 1e-6, 0.1, true)", function() return optim.adam(1e-3, {0.8, 0.99}, 1e-6, 0.1, true) end,
        {lr = 1e-3, betas = {0.8, 0.99}, eps = 1e-6, weight_decay = 0.1, amsgrad = true}},
    {"optim.adamw(3e-4)", function() return optim.adamw(3e-4) end, {lr = 3e-4, weight_decay = 1e-2}},
    {"optim.rmsprop(0.01, 0.9, 1e-6, 0, 0.5, true)", function() return optim.rmsprop(0.01, 0.9, 1e-6, 0, 0.5, true) end,
        {lr = 0.01, alpha = 0.9, eps = 1e-6, weight_decay = 0.0, momentum = 0.5, centered = true}},
    {"optim.adagrad(0.1, 0.01, 0.001, 0.1, 1e-9)", function() return optim.adagrad(0.1, 0.01, 0.001, 0.1, 1e-9) end,
        {lr = 0.1, lr_decay = 0.01, weight_decay = 0.001, initial_accumulator_value = 0.1, eps = 1e-9}},
    {"optim.sgd(0.1, {momentum = 0.9})", function() return optim.sgd(0.1, {momentum = 0.9}) end,
        {lr = 0.1, momentum = 0.9}},
    {"sched.step(30, 0.5)", function() return sched.step(30, 0.5) end, {step_size = 30, gamma = 0.5}},
    {"sched.multistep({30, 60}, 0.2)", function() return sched.multistep({30, 60}, 0.2) end,
        {milestones = {30, 60}, gamma = 0.2}},
    {"sched.multistep{30, 60}", function() return sched.multistep{30, 60} end, {milestones = {30, 60}}},
    {"sched.exponential(0.9)", function() return sched.exponential(0.9) end, {gamma = 0.9}},
    {"sched.cosine(10, 1e-3)", function() return sched.cosine(10, 1e-3) end, {T_max = 10, eta_min = 1e-3}},
    {"sched.cosine_restarts(10, 2, 1e-3)", function() return sched.cosine_restarts(10, 2, 1e-3) end,
        {T_0 = 10, T_mult = 2, eta_min = 1e-3}},
    {"sched.linear(0.5, 1, 10)", function() return sched.linear(0.5, 1, 10) end,
        {start_factor = 0.5, end_factor = 1.0, total_iters = 10}},
    {"sched.polynomial(10, 2)", function() return sched.polynomial(10, 2) end, {total_iters = 10, power = 2.0}},
    {"sched.onecycle(0.1)", function() return sched.onecycle(0.1) end, {max_lr = 0.1}},
    {"sched.reduce_on_plateau('min', 0.5, 3)", function() return sched.reduce_on_plateau("min", 0.5, 3) end,
        {mode = "min", factor = 0.5, patience = 3}},
    {"data.split(0.1)", function() return data.split(0.1) end, {fraction = 0.1}},
}

T.test("positional forms mean what PyTorch means", function()
    for _, c in ipairs(cases) do
        local got = c[2]()
        for k, want in pairs(c[3]) do T.eq(got[k], want, c[1] .. " " .. k) end
    end
end)

T.test("a positional value and the same option by name", function()
    T.errors(function() nn.linear(13, 32, {out_features = 8}) end, "nn.linear: out_features is given twice")
    T.errors(function() nn.linear(nil, 3) end, "nn.linear: positional argument #1 is nil")
    T.errors(function() nn.conv2d(32) end, "nn.conv2d: kernel_size is required")
    T.errors(function() nn.relu(true) end,
        "nn.relu: unexpected positional argument #1 (true); accepted forms: nn.relu{...} with named options only")
    T.errors(function() nn.max_pool2d(2, 2, 0, 1) end, "nn.max_pool2d: unexpected positional argument #4 (1)")
end)

T.test("containers take layers as arguments or as a list, nothing else", function()
    local a = nn.sequential(nn.linear(4), nn.relu(), nn.linear(2))
    local b = nn.sequential{nn.linear(4), nn.relu(), nn.linear(2)}
    T.eq(#a.layers, 3)
    T.eq(#tk.lower(a), #tk.lower(b))
    T.errors(function() nn.sequential(nn.linear(4), 5) end, "nn.sequential: item 2 is not a layer: got 5")
    T.errors(function() nn.residual({nn.linear(4)}, nn.relu()) end, "nn.residual: item 1 is not a layer")
    T.errors(function() nn.graph(function(x) return x end, 2) end,
        "nn.graph: unexpected positional argument #2 (2); accepted forms: nn.graph(fn)")
    T.errors(function()
        tk.lower(nn.graph(function(x) return nn.concat({x, x}, 1) end))
    end, "nn.concat: unexpected argument #2 (1); write nn.concat{a, b, dim = 1}")
end)

T.test("Keras-style names build the constructor with its defaults", function()
    local dir = T.tmpdir()
    T.touch(dir .. "/d.csv")
    tk.script_dir = dir
    local function script(fields)
        return "return tk.pipeline { data = { train = tk.data.csv 'd.csv' }, model = tk.nn.linear(2), "
            .. fields .. " }"
    end
    local p = T.run(script("loss = 'cross_entropy', optimizer = 'adam', schedule = 'cosine'"))
    T.eq(p.loss._kind, "loss.cross_entropy")
    T.eq(p.loss.attrs.label_smoothing, 0.0)
    T.eq({p.optimizer._kind, p.optimizer.lr}, {"optim.adam", 1e-3})
    T.eq(p.schedule._kind, "sched.cosine")
    T.errors(function() T.run(script("loss = 'crossentropy', optimizer = 'adam'")) end,
        "loss names no tk.loss constructor: got 'crossentropy' (did you mean 'cross_entropy'?)")
    T.errors(function() T.run(script("loss = 'mse', optimizer = 'sgd'")) end, "optim.sgd: lr is required")
    T.errors(function() T.run("return tk.pipeline({}, 3)") end, "pipeline: unexpected argument #2 (3)")
end)

T.test("a misspelled constructor or monitor names the nearest one", function()
    T.errors(function() T.run("local l = tk.loss.crossentropy{}") end,
        "mlp.lua:1: tk.loss.crossentropy does not exist (did you mean tk.loss.cross_entropy?)")
    T.errors(function() T.run("local l = tk.nn.Linear(3)") end, "tk.nn.Linear does not exist (did you mean tk.nn.linear?)")
    T.errors(function() T.run("local o = tk.optimizer.adam()") end, "tk.optimizer does not exist (did you mean tk.optim?)")
    T.eq(tk.script_dir, nil, "an unset script_dir reads as nil")
    local dir = T.tmpdir()
    T.touch(dir .. "/d.csv")
    tk.script_dir = dir
    T.errors(function() T.run([[
        return tk.pipeline { data = { train = tk.data.csv 'd.csv', valid = tk.data.split(0.5) },
                             model = tk.nn.linear(2), loss = "cross_entropy", optimizer = "adam",
                             save = { best = "valid.los" } }]]) end,
        "save.best: monitor 'valid.los' names no metric (did you mean 'valid.loss'?)")
    T.errors(function() T.run([[
        return tk.pipeline { data = { train = tk.data.csv 'd.csv', valid = tk.data.split(0.5) },
                             model = tk.nn.linear(2), loss = "cross_entropy", optimizer = "adam",
                             metrics = {"accuracy", "f1"}, early_stop = { monitor = "valid.accuracyy" } }]]) end,
        "early_stop: monitor 'valid.accuracyy' names no metric (did you mean 'valid.accuracy'?)")
end)

T.done()
