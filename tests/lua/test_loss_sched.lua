-- tk.loss and tk.sched: resolved tables, defaults and checks.
local T = require "tktest"
local tk = T.tk

T.test("loss tables", function()
    local l = tk.loss.cross_entropy{label_smoothing = 0.1}
    T.eq({l._kind, l.op}, {"loss.cross_entropy", "cross_entropy"})
    T.eq(l.attrs, {ignore_index = -100, label_smoothing = 0.1, reduction = "mean"})
    T.eq(tk.loss.nll().attrs, {ignore_index = -100, reduction = "mean"})
    T.eq(tk.loss.nll{weight = {1, 2}}.attrs.weight, {1.0, 2.0})
    T.eq(tk.loss.mse().attrs, {reduction = "mean"})
    T.eq(tk.loss.l1{reduction = "sum"}.attrs, {reduction = "sum"})
    T.eq(tk.loss.smooth_l1().attrs, {beta = 1.0, reduction = "mean"})
    T.eq(tk.loss.huber().attrs, {delta = 1.0, reduction = "mean"})
    T.eq(tk.loss.bce_with_logits{pos_weight = 3}.attrs, {pos_weight = {3.0}, reduction = "mean"})
    T.eq(tk.loss.mse()._where:match("^test_loss_sched%.lua:%d+$") ~= nil, true)
end)

T.test("loss checks", function()
    T.errors(function() tk.loss.cross_entropy{label_smoothing = 1.5} end, "label_smoothing must be a number in [0, 1], got 1.5")
    T.errors(function() tk.loss.cross_entropy{reduction = "none"} end, "reduction must be one of 'mean', 'sum', got 'none'")
    T.errors(function() tk.loss.cross_entropy{smoothing = 0.1} end, "loss.cross_entropy: unknown key 'smoothing'")
    T.errors(function() tk.loss.huber{delta = 0} end, "delta must be a number > 0, got 0")
    T.errors(function() tk.loss.mse(1) end, "loss.mse: unexpected positional argument #1 (1); accepted forms: loss.mse{...} with named options only")
end)

T.test("schedule defaults", function()
    local c = tk.sched.cosine()
    T.eq({c._kind, c.type, c.T_max, c.eta_min, c.warmup_steps, c.warmup_start_factor, c.unit},
         {"sched.cosine", "cosine", nil, 0.0, 0, 0.0, "epoch"})
    T.eq(tk.sched.constant().type, "constant")
    local s = tk.sched.step(30)
    T.eq({s.step_size, s.gamma}, {30, 0.1})
    T.eq(tk.sched.multistep{milestones = {30, 60}}.milestones, {30, 60})
    T.eq(tk.sched.exponential(0.95).gamma, 0.95)
    local r = tk.sched.cosine_restarts{T_0 = 10}
    T.eq({r.T_0, r.T_mult, r.eta_min}, {10, 1, 0.0})
    local l = tk.sched.linear{unit = "step", total_iters = 100}
    T.eq({l.start_factor, l.end_factor, l.total_iters, l.unit}, {1 / 3, 1.0, 100, "step"})
    local p = tk.sched.polynomial()
    T.eq({p.total_iters, p.power}, {nil, 1.0})
    local o = tk.sched.onecycle(0.1)
    T.eq({o.max_lr, o.pct_start, o.anneal_strategy, o.div_factor, o.final_div_factor},
         {0.1, 0.3, "cos", 25.0, 1e4})
    local rp = tk.sched.reduce_on_plateau()
    T.eq({rp.monitor, rp.mode, rp.factor, rp.patience, rp.threshold, rp.cooldown, rp.min_lr},
         {"valid.loss", "min", 0.1, 10, 1e-4, 0, 0.0})
    T.eq(tk.sched.reduce_on_plateau{monitor = "valid.accuracy"}.mode, "max", "mode inferred from the metric")
end)

T.test("schedule checks", function()
    T.errors(function() tk.sched.step{} end, "sched.step: step_size is required")
    T.errors(function() tk.sched.multistep{milestones = {60, 30}} end, "milestones must be increasing")
    T.errors(function() tk.sched.cosine{unit = "epochs"} end, "unit must be one of 'epoch', 'step', got 'epochs' (did you mean 'epoch'?)")
    T.errors(function() tk.sched.cosine{T_max = 0} end, "T_max must be a positive integer, got 0")
    T.errors(function() tk.sched.cosine{T_max = 2^40} end,
        "T_max must be a positive integer up to 2147483647, got")
    T.errors(function() tk.sched.cosine{warmup = 100} end, "unknown key 'warmup' (did you mean 'warmup_steps'?)")
    T.errors(function() tk.sched.linear{start_factor = 0} end, "start_factor must be a number in (0, 1], got 0")
    T.errors(function() tk.sched.reduce_on_plateau{factor = 1} end, "factor must be a number in (0, 1), got 1")
    T.errors(function() tk.sched.reduce_on_plateau{monitor = "val_loss"} end,
        "monitor must be a name like 'valid.loss' or 'train.accuracy', got 'val_loss'")
    T.errors(function() tk.sched.onecycle{} end, "max_lr is required")
end)

T.done()
