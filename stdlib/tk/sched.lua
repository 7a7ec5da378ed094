-- Learning-rate schedule constructors (tk.sched), after torch.optim.lr_scheduler. Every
-- schedule also takes warmup_steps (always counted in optimizer steps), warmup_start_factor
-- and unit: whether step_size, T_max, milestones, ... count epochs (default) or steps.
-- A missing T_max / total_iters means "the whole run".
local S = require "tk.schema"
S.internal(debug.getinfo(1, "S").source)

local sched = {}

local posint = S.integer{min = 1}
local nonneg_int = S.integer{min = 0}
local nonneg = S.number{min = 0}
local positive = S.number{min = 0, min_open = true}

local common = {
    {"warmup_steps", nonneg_int, default = 0},
    {"warmup_start_factor", S.number{min = 0, max = 1}, default = 0.0},
    {"unit", S.enum{"epoch", "step"}, default = "epoch"},
}

local defs = {
    constant = {fields = {}},
    step = {fields = {
        {"step_size", posint, required = true},
        {"gamma", positive, default = 0.1},
    }, positional = {"step_size", "gamma"}},
    multistep = {fields = {
        {"milestones", S.list(posint, {min = 1}), required = true},
        {"gamma", positive, default = 0.1},
    }, positional = {"milestones", "gamma"}, check = function(s, fail)
        for i = 2, #s.milestones do
            if s.milestones[i] <= s.milestones[i - 1] then fail("milestones must be increasing") end
        end
    end},
    exponential = {fields = {{"gamma", positive, required = true}}, positional = {"gamma"}},
    cosine = {fields = {
        {"T_max", posint},
        {"eta_min", nonneg, default = 0.0},
    }, positional = {"T_max", "eta_min"}},
    cosine_restarts = {fields = {
        {"T_0", posint, required = true},
        {"T_mult", posint, default = 1},
        {"eta_min", nonneg, default = 0.0},
    }, positional = {"T_0", "T_mult", "eta_min"}},
    linear = {fields = {
        {"start_factor", S.number{min = 0, max = 1, min_open = true}, default = 1 / 3},
        {"end_factor", S.number{min = 0, max = 1}, default = 1.0},
        {"total_iters", posint},
    }, positional = {"start_factor", "end_factor", "total_iters"}},
    polynomial = {fields = {
        {"total_iters", posint},
        {"power", positive, default = 1.0},
    }, positional = {"total_iters", "power"}},
    onecycle = {fields = {
        {"max_lr", positive, required = true},
        {"pct_start", S.number{min = 0, max = 1, min_open = true, max_open = true}, default = 0.3},
        {"anneal_strategy", S.enum{"cos", "linear"}, default = "cos"},
        {"div_factor", positive, default = 25.0},
        {"final_div_factor", positive, default = 1e4},
    }, positional = {"max_lr"}},
    reduce_on_plateau = {fields = {
        {"monitor", S.monitor_t, default = "valid.loss"},
        {"mode", S.mode_t, default = function(s) return S.infer_mode(s.monitor) end},
        {"factor", S.number{min = 0, max = 1, min_open = true, max_open = true}, default = 0.1},
        {"patience", nonneg_int, default = 10},
        {"threshold", nonneg, default = 1e-4},
        {"threshold_mode", S.enum{"rel", "abs"}, default = "rel"},
        {"cooldown", nonneg_int, default = 0},
        {"min_lr", nonneg, default = 0.0},
    }, positional = {"mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr"}},
}

local function define(type_name)
    local def = defs[type_name]
    local kind = "sched." .. type_name
    local fields = {table.unpack(def.fields)}
    for _, f in ipairs(common) do fields[#fields + 1] = f end
    local spec = S.spec(kind, fields, {positional = def.positional})
    local entry = {spec = spec}
    function entry.build(raw)
        local s = S.validate(spec, raw)
        if def.check then def.check(s, function(msg) S.fail(kind, msg) end) end
        s.type = type_name
        s._kind = kind
        s._where = raw._where or S.where()
        return s
    end
    -- A mode equal to the inferred one is dropped, so that --set schedule.monitor=... infers
    -- the mode again.
    function entry.unbuild(obj)
        local raw = S.shallow_unbuild(obj)
        raw.type = nil
        if raw.mode and raw.mode == S.infer_mode(raw.monitor) then raw.mode = nil end
        return raw
    end
    S.register(kind, entry)
    sched[type_name] = function(...) return entry.build(S.args(spec, ...)) end
    S.public[sched[type_name]] = spec
end

for type_name in pairs(defs) do define(type_name) end

return sched
