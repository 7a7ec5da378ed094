-- tk.optim: PyTorch 1.13 defaults and checks, parameter groups resolution, freeze.
local T = require "tktest"
local optim = T.tk.optim

T.test("defaults as in PyTorch 1.13", function()
    local a = optim.adam()
    T.eq({a._kind, a.type, a.lr, a.betas, a.eps, a.weight_decay, a.amsgrad},
         {"optim.adam", "adam", 1e-3, {0.9, 0.999}, 1e-8, 0.0, false})
    T.eq(optim.adamw().weight_decay, 1e-2)
    local r = optim.rmsprop()
    T.eq({r.lr, r.alpha, r.eps, r.weight_decay, r.momentum, r.centered}, {1e-2, 0.99, 1e-8, 0.0, 0.0, false})
    local g = optim.adagrad()
    T.eq({g.lr, g.lr_decay, g.weight_decay, g.initial_accumulator_value, g.eps}, {1e-2, 0.0, 0.0, 0.0, 1e-10})
    local s = optim.sgd(0.1)
    T.eq({s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov}, {0.1, 0.0, 0.0, 0.0, false})
    T.eq(s.groups, {})
    T.eq(s.freeze, {})
    T.eq(optim.sgd{lr = 1}.lr, 1.0, "numbers are stored as floats")
end)

T.test("PyTorch's checks", function()
    T.errors(function() optim.sgd{} end, "optim.sgd: lr is required")
    T.errors(function() optim.sgd{lr = -0.1} end, "optim.sgd: lr must be a number >= 0, got -0.1")
    T.errors(function() optim.sgd{lr = 0.1, nesterov = true} end, "nesterov requires momentum > 0 and dampening = 0")
    T.eq(optim.sgd{lr = 0.1, momentum = 0.9, nesterov = true}.nesterov, true)
    T.errors(function() optim.adam{betas = {0.9, 1.0}} end, "optim.adam: betas[2] must be a number in [0, 1), got 1.0")
    T.errors(function() optim.adam{betas = {0.9}} end, "betas must be a list of 2 values, each a number in [0, 1)")
    T.errors(function() optim.adam{eps = -1} end, "eps must be a number >= 0")
    T.errors(function() optim.adam{learing_rate = 3e-4} end, "optim.adam: unknown key 'learing_rate' (did you mean 'lr'?)")
    T.errors(function() optim.adam{learning_rate = 3e-4} end, "(did you mean 'lr'?)")
    T.errors(function() optim.adam{lr = 0 / 0} end, "lr must be a number >= 0, got nan")
end)

T.test("groups: every option resolved, explicit ones remembered", function()
    local o = T.run([[
local o = tk.optim.adamw {
    lr = 1e-3, weight_decay = 5e-4,
    groups = {
        { match = "*.bias", weight_decay = 0 },
        { match = {"1.*", "fc.*"}, lr = 1e-4, betas = {0.8, 0.9} },
    },
    freeze = "0.*",
}
return o
]])
    local g1, g2 = o.groups[1], o.groups[2]
    T.eq(g1.match, {"*.bias"})
    T.eq({g1.lr, g1.weight_decay, g1.betas, g1.eps, g1.amsgrad}, {1e-3, 0.0, {0.9, 0.999}, 1e-8, false})
    T.eq(g1._explicit, {weight_decay = true})
    T.eq(g2.match, {"1.*", "fc.*"})
    T.eq({g2.lr, g2.weight_decay, g2.betas}, {1e-4, 5e-4, {0.8, 0.9}})
    T.eq(g2._explicit, {lr = true, betas = true})
    T.eq(o.freeze, {"0.*"})
    T.eq(o._where, "mlp.lua:1")
    T.eq(g1._where, "mlp.lua:1")
end)

T.test("a group option the optimizer does not have fails", function()
    local src = "local o = tk.optim.sgd {\n  lr = 0.1,\n  groups = {\n    { match = '*.bias' },\n    { match = '1.*', betas = {0.9, 0.99} },\n  },\n}\n"
    T.errors(function() T.run(src) end, "optim.sgd: group 2: unknown key 'betas' (valid keys: dampening, lr, match, momentum, nesterov, weight_decay)", "mlp.lua:1: ")
    T.errors(function() optim.sgd{lr = 0.1, groups = {{lr = 0.2}}} end, "optim.sgd: group 1: match is required")
    T.errors(function() optim.sgd{lr = 0.1, groups = {{match = "*", momentum = -1}}} end, "group 1: momentum must be a number >= 0, got -1")
    T.errors(function() optim.sgd{lr = 0.1, groups = {{match = "*", nesterov = true}}} end,
        "optim.sgd: group 1: nesterov requires momentum > 0")
    T.errors(function() optim.sgd{lr = 0.1, groups = {"*.bias"}} end, "group 1: must be a table {match = ..., <options>}, got '*.bias'")
    T.errors(function() optim.sgd{lr = 0.1, groups = {{match = "*", lr = 0.1, learing_rate = 1}}} end,
        "group 1: unknown key 'learing_rate' (did you mean 'lr'?)")
    T.errors(function() optim.sgd{lr = 0.1, freeze = {1}} end, "freeze[1] must be a non-empty string, got 1")
end)

T.done()
