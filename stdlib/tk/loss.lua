-- Loss constructors (tk.loss), with PyTorch's option names and defaults. A loss is
-- {_kind = "loss.<op>", op = "<op>", task = ..., attrs = {resolved options}, _where}.
-- `task` is decided here, once per loss, and everything else reads it (the metrics, the
-- labels the data must hold, the runtime's scoring): "classification" (class ids),
-- "regression" (numbers) or "multilabel" (one yes/no target per output).
local S = require "tk.schema"
S.internal(debug.getinfo(1, "S").source)

local loss = {}

-- The per-sample losses are always reduced: training needs one number.
local reduction = {"reduction", S.enum{"mean", "sum"}, default = "mean"}
local class_weight = {"weight", S.list(S.number{min = 0}, {min = 1})}
local ignore_index = {"ignore_index", S.integer(), default = -100}

-- positional: PyTorch's positional order where it names options tkrun has (its deprecated
-- size_average/reduce arguments come second in most losses, so only weight leads).
local function define(op, task, fields, positional)
    local kind = "loss." .. op
    local spec = S.spec(kind, fields, {positional = positional})
    local entry = {spec = spec}
    function entry.build(raw)
        return {_kind = kind, op = op, task = task, attrs = S.validate(spec, raw),
            _where = raw._where or S.where()}
    end
    function entry.unbuild(obj)
        local raw = S.copy(obj.attrs)
        raw._where = obj._where
        return raw
    end
    S.register(kind, entry)
    loss[op] = function(...) return entry.build(S.args(spec, ...)) end
    S.public[loss[op]] = spec
end

define("cross_entropy", "classification", {
    class_weight, ignore_index,
    {"label_smoothing", S.number{min = 0, max = 1}, default = 0.0},
    reduction,
}, {"weight"})
define("nll", "classification", {class_weight, ignore_index, reduction}, {"weight"})
define("mse", "regression", {reduction})
define("l1", "regression", {reduction})
define("smooth_l1", "regression", {{"beta", S.number{min = 0}, default = 1.0}, reduction})
define("huber", "regression", {reduction, {"delta", S.number{min = 0, min_open = true}, default = 1.0}},
    {"reduction", "delta"})
define("bce_with_logits", "multilabel", {
    {"pos_weight", S.list(S.number{min = 0}, {scalar = true, min = 1})},
    reduction,
})

return loss
