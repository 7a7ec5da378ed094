-- Optimizer constructors (tk.optim) with PyTorch 1.13 names, defaults and checks, plus
-- parameter groups and freezing. Every group carries every option resolved (its own value,
-- else the optimizer's), and `_explicit` remembers which it set itself, so that
-- --set optimizer.lr=... reaches exactly the groups that did not choose their own lr.
local S = require "tk.schema"
S.internal(debug.getinfo(1, "S").source)

local optim = {}

local nonneg = S.number{min = 0}
local beta = S.number{min = 0, max = 1, max_open = true}
local glob = S.string
local globs = S.list(glob, {scalar = true})

local defs = {
    sgd = {
        {"lr", nonneg, required = true},
        {"momentum", nonneg, default = 0.0},
        {"dampening", S.number(), default = 0.0},
        {"weight_decay", nonneg, default = 0.0},
        {"nesterov", S.boolean, default = false},
    },
    adam = {
        {"lr", nonneg, default = 1e-3},
        {"betas", S.list(beta, {len = 2}), default = {0.9, 0.999}},
        {"eps", nonneg, default = 1e-8},
        {"weight_decay", nonneg, default = 0.0},
        {"amsgrad", S.boolean, default = false},
    },
    adamw = {
        {"lr", nonneg, default = 1e-3},
        {"betas", S.list(beta, {len = 2}), default = {0.9, 0.999}},
        {"eps", nonneg, default = 1e-8},
        {"weight_decay", nonneg, default = 1e-2},
        {"amsgrad", S.boolean, default = false},
    },
    rmsprop = {
        {"lr", nonneg, default = 1e-2},
        {"alpha", nonneg, default = 0.99},
        {"eps", nonneg, default = 1e-8},
        {"weight_decay", nonneg, default = 0.0},
        {"momentum", nonneg, default = 0.0},
        {"centered", S.boolean, default = false},
    },
    adagrad = {
        {"lr", nonneg, default = 1e-2},
        {"lr_decay", nonneg, default = 0.0},
        {"weight_decay", nonneg, default = 0.0},
        {"initial_accumulator_value", nonneg, default = 0.0},
        {"eps", nonneg, default = 1e-10},
    },
}

-- Checks that involve several options; run on the optimizer and on every resolved group.
local function cross_check(ctx, o)
    if o.nesterov and (o.momentum <= 0 or o.dampening ~= 0) then
        S.fail(ctx, "nesterov requires momentum > 0 and dampening = 0")
    end
end

local function define(type_name)
    local kind = "optim." .. type_name
    local options = defs[type_name]
    local option_names = {}
    for i, f in ipairs(options) do option_names[i] = f[1] end

    local fields = {table.unpack(options)}
    fields[#fields + 1] = {"groups", {
        desc = "a list of {match = ..., <options>} tables",
        check = function(v)
            if type(v) == "table" and not getmetatable(v) and not rawget(v, "_kind") then return v end
        end,
    }}
    fields[#fields + 1] = {"freeze", globs, default = {}}
    -- PyTorch's positional order, without the params argument: optim.sgd(0.1, 0.9).
    local spec = S.spec(kind, fields, {positional = option_names})

    -- A group accepts `match` and the optimizer's own options (all optional).
    local group_fields = {{"match", globs, required = true}}
    for _, f in ipairs(options) do group_fields[#group_fields + 1] = {f[1], f[2]} end
    local group_spec = S.spec(kind .. ": group", group_fields)

    local entry = {spec = spec}

    local function resolve_group(o, i, raw, where)
        local ctx = string.format("%s: group %d", kind, i)
        if type(raw) ~= "table" or getmetatable(raw) or rawget(raw, "_kind") then
            S.fail(ctx, "must be a table {match = ..., <options>}, got " .. S.repr(raw))
        end
        local g = S.validate(group_spec, raw, ctx)
        g._explicit = {}
        for _, name in ipairs(option_names) do
            if g[name] ~= nil then g._explicit[name] = true else g[name] = S.copy(o[name]) end
        end
        for _, m in ipairs(g.match) do
            if m == "" then S.fail(ctx, "match patterns must be non-empty") end
        end
        cross_check(ctx, g)
        g._where = raw._where or where
        return g
    end

    function entry.build(raw)
        local o = S.validate(spec, raw)
        cross_check(kind, o)
        local where = raw._where or S.where()
        local groups = {}
        local n = 0
        for _ in pairs(o.groups or {}) do n = n + 1 end
        if o.groups and n ~= #o.groups then S.fail(kind, "groups must be a list of tables") end
        for i, g in ipairs(o.groups or {}) do groups[i] = resolve_group(o, i, g, where) end
        o.groups = groups
        o.type = type_name
        o._kind = kind
        o._where = where
        return o
    end

    -- Raw input that rebuilds the same optimizer: groups keep only what they set themselves.
    function entry.unbuild(obj)
        local raw = {_where = obj._where, freeze = S.copy(obj.freeze), groups = {}}
        for _, name in ipairs(option_names) do raw[name] = S.copy(obj[name]) end
        for i, g in ipairs(obj.groups) do
            raw.groups[i] = entry.unbuild_group(g)
        end
        return raw
    end

    function entry.unbuild_group(g)
        local r = {match = S.copy(g.match), _where = g._where}
        for name in pairs(g._explicit) do r[name] = S.copy(g[name]) end
        return r
    end

    -- tk.set walks into optimizer.groups.<i> with this entry; the optimizer rebuild
    -- resolves the group again.
    entry.items = {groups = {
        spec = group_spec,
        unbuild = entry.unbuild_group,
        build = function(raw) return raw end,
    }}

    S.register(kind, entry)
    optim[type_name] = function(...) return entry.build(S.args(spec, ...)) end
    S.public[optim[type_name]] = spec
end

for name in pairs(defs) do define(name) end

return optim
