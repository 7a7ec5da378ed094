-- Loss constructors (tk.loss), with PyTorch's option names and defaults. A loss is
-- {_kind = "loss.<op>", op = "<op>", attrs = {resolved options}, _where}.
local S = require "tk.schema"
S.internal(debug.getinfo(1, "S").source)

local loss = {}

-- Losses whose targets are numbers rather than classes; the pipeline picks metrics by this.
loss.regression = {mse = true, l1 = true, smooth_l1 = true, huber = true}

-- The per-sample losses are always reduced: training needs one number.
local reduction = {"reduction", S.enum{"mean", "sum"}, default = "mean"}
local class_weight = {"weight", S.list(S.number{min = 0}, {min = 1})}
local ignore_index = {"ignore_index", S.integer(), default = -100}

-- positional: PyTorch's positional order where it names options tkrun has (its deprecated
-- size_average/reduce arguments come second in most losses, so only weight leads).
local function define(op, fields, positional)
    local kind = "loss." .. op
    local spec = S.spec(kind, fields, {positional = positional})
    local entry = {spec = spec}
    function entry.build(raw)
        return {_kind = kind, op = op, attrs = S.validate(spec, raw), _where = raw._where or S.where()}
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

define("cross_entropy", {
    class_weight, ignore_index,
    {"label_smoothing", S.number{min = 0, max = 1}, default = 0.0},
    reduction,
}, {"weight"})
define("nll", {class_weight, ignore_index, reduction}, {"weight"})
define("mse", {reduction})
define("l1", {reduction})
define("smooth_l1", {{"beta", S.number{min = 0}, default = 1.0}, reduction})
define("huber", {reduction, {"delta", S.number{min = 0, min_open = true}, default = 1.0}},
    {"reduction", "delta"})
define("bce_with_logits", {
    {"pos_weight", S.list(S.number{min = 0}, {scalar = true, min = 1})},
    reduction,
})

return loss
