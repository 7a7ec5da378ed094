-- The `tk` module: the constructor namespaces, tk.pipeline (the validated run description a
-- script returns), tk.set (command-line overrides, validated like the script), tk.describe
-- (the resolved config as text for note.log) and tk.lower (model -> node list).
local S = require "tk.schema"
S.internal(debug.getinfo(1, "S").source)

local tk = {
    nn = require "tk.nn",
    data = require "tk.data",
    optim = require "tk.optim",
    sched = require "tk.sched",
    loss = require "tk.loss",
    script_dir = nil,   -- set by the host before the user's script runs
}
S.root = tk
tk.lower = tk.nn.lower

-- constructor function -> "tk.loss.mse", to explain a value like `loss = tk.loss.mse`
local constructors = {}
for _, ns in ipairs{"nn", "data", "optim", "sched", "loss"} do
    for name, f in pairs(tk[ns]) do
        if type(f) == "function" then constructors[f] = "tk." .. ns .. "." .. name end
    end
end

-- A misspelled name (tk.loss.crossentropy{}) is an error that names the nearest one, not
-- Lua's "attempt to call a nil value". `may_be_nil` lists fields that are legitimately unset;
-- `aliases` maps other libraries' names to ours.
local function guard(t, prefix, may_be_nil, aliases)
    setmetatable(t, {__index = function(_, k)
        if may_be_nil and may_be_nil[k] then return nil end
        local names = {}
        for name in pairs(t) do
            if type(name) == "string" and name:sub(1, 1) ~= "_" then names[#names + 1] = name end
        end
        local hint = type(k) == "string" and ((aliases and aliases[k]) or S.suggest(k, names))
        S.fail(nil, string.format("%s%s does not exist%s", prefix, tostring(k),
            hint and " (did you mean " .. prefix .. hint .. "?)" or ""))
    end})
end
for _, ns in ipairs{"nn", "data", "optim", "sched", "loss"} do guard(tk[ns], "tk." .. ns .. ".") end
guard(tk, "tk.", {script_dir = true}, {optimizer = "optim", optimizers = "optim", scheduler = "sched",
    lr_scheduler = "sched", losses = "loss", layers = "nn", dataset = "data", datasets = "data"})

local function got(v)
    if type(v) == "function" and constructors[v] then
        return "a function; did you forget to call it? write " .. constructors[v] .. "{}"
    end
    return S.repr(v)
end

-- A field holding a constructor result whose _kind starts with `prefix`. With `ns` (a
-- constructor namespace), a name is accepted too, Keras-style: optimizer = "adam" is
-- tk.optim.adam() with its defaults; a name that is no constructor gets a suggestion.
local function kind_t(prefix, desc, ns)
    return {
        desc = desc,
        check = function(v)
            if ns and type(v) == "string" then
                local ctor = rawget(tk[ns], v)
                if type(ctor) == "function" and constructors[ctor] then return ctor() end
                local names = {}
                for name, f in pairs(tk[ns]) do
                    if type(f) == "function" and constructors[f] then names[#names + 1] = name end
                end
                local hint = S.suggest(v, names)
                return nil, string.format(" names no tk.%s constructor: got '%s'%s", ns, v,
                    hint and " (did you mean '" .. hint .. "'?)" or "")
            end
            if type(v) == "table" and type(rawget(v, "_kind")) == "string"
                and rawget(v, "_kind"):sub(1, #prefix) == prefix then
                return v
            end
            return nil, " must be " .. desc .. ", got " .. got(v)
        end,
    }
end

local posint = S.integer{min = 1}
local nonneg_int = S.integer{min = 0}
local positive = S.number{min = 0, min_open = true}

-- ---------------------------------------------------------------- data

local source_t = kind_t("data.", "a data source (tk.data.csv{...} or tk.data.idx{...})")
local train_t = {
    desc = source_t.desc,
    check = function(v)
        if type(v) == "table" and rawget(v, "_kind") == "data.split" then
            return nil, " cannot be a data.split (splits are taken from train)"
        end
        return source_t.check(v)
    end,
}

local data_spec = S.spec("data", {
    {"train", train_t, required = true},
    {"valid", source_t},
    {"test", source_t},
    {"batch_size", posint, default = 32},
    {"shuffle", S.boolean, default = true},
    {"drop_last", S.boolean, default = false},
})
local data_entry = {spec = data_spec, unbuild = S.shallow_unbuild}
function data_entry.build(raw)
    local d = S.validate(data_spec, raw)
    local taken = 0
    for _, split in ipairs{"valid", "test"} do
        if d[split] and d[split]._kind == "data.split" then taken = taken + d[split].fraction end
    end
    if taken >= 1 then S.fail("data", "valid and test splits take the whole training set") end
    return d
end

-- ---------------------------------------------------------------- save, early_stop, init

-- A monitor record {monitor, mode}; the mode is inferred from the metric unless given.
local function monitored(name, fields)
    local all = {
        {"monitor", S.monitor_t, default = "valid.loss"},
        {"mode", S.mode_t, default = function(r) return S.infer_mode(r.monitor) end},
    }
    for _, f in ipairs(fields) do all[#all + 1] = f end
    local entry = {spec = S.spec(name, all)}
    function entry.build(raw) return S.validate(entry.spec, raw) end
    -- A mode equal to the inferred one is dropped so that a new monitor infers it again.
    function entry.unbuild(obj)
        local raw = S.shallow_unbuild(obj)
        if raw.mode == S.infer_mode(raw.monitor) then raw.mode = nil end
        return raw
    end
    return entry
end

local best_entry = monitored("save.best", {})
-- best = "valid.accuracy" | {monitor = ..., mode = ...} | false (no best checkpoint)
local best_t = {
    desc = "a monitor name like 'valid.loss', {monitor = ..., mode = ...} or false",
    record = best_entry,
    check = function(v)
        if v == false then return false end
        if type(v) == "string" then
            if S.monitor_t.check(v) then return best_entry.build{monitor = v} end
            return nil
        end
        return S.record(best_entry).check(v)
    end,
    coerce = function(s) if s == "false" then return false end return s end,
}

local save_spec = S.spec("save", {
    {"best", best_t},   -- filled by the pipeline: "valid.loss" when there is valid data
    {"every", posint},
    {"keep", posint},
    {"last", S.boolean, default = true},
})
local save_entry = {spec = save_spec}
function save_entry.build(raw)
    local s = S.validate(save_spec, raw)
    if s.keep and not s.every then S.fail("save", "keep counts the every-N checkpoints, so it needs every") end
    return s
end
function save_entry.unbuild(obj)
    local raw = S.shallow_unbuild(obj)
    if type(raw.best) == "table" then raw.best = best_entry.unbuild(raw.best) end
    return raw
end

local early_entry = monitored("early_stop", {
    {"patience", nonneg_int, default = 10},
    {"min_delta", S.number{min = 0}, default = 0.0},
    {"restore_best", S.boolean, default = false},
})

-- rename = {["old.*"] = "new.*"}: each '*' of the pattern feeds the same '*' of the name.
local rename_t = {
    desc = "a table of {['old.*'] = 'new.*'} string pairs",
    check = function(v)
        if type(v) ~= "table" or getmetatable(v) then return nil end
        local out = {}
        for k, x in pairs(v) do
            if type(k) ~= "string" or type(x) ~= "string" then return nil end
            local _, stars_k = k:gsub("%*", "")
            local _, stars_x = x:gsub("%*", "")
            if stars_k ~= stars_x then
                return nil, string.format("['%s'] has %d '*' but '%s' has %d", k, stars_k, x, stars_x)
            end
            out[k] = x
        end
        return out
    end,
}
local init_spec = S.spec("init", {
    {"path", S.string, required = true},
    {"rename", rename_t, default = {}},
    {"strict", S.boolean, default = false},
})
local init_entry = {spec = init_spec, unbuild = S.shallow_unbuild}
function init_entry.build(raw)
    local i = S.validate(init_spec, raw)
    i.path = tk.data.resolve("init", "weights", i.path)
    return i
end
-- init = "weights.safetensors" | {path = ..., rename = ..., strict = ...}, kept as the table
local init_t = {
    desc = "a weights file path or {path = ..., rename = ..., strict = ...}",
    record = init_entry,
    check = function(v)
        if type(v) == "string" and v ~= "" then return init_entry.build{path = v} end
        return S.record(init_entry).check(v)
    end,
    coerce = function(s) return s end,
}

-- ---------------------------------------------------------------- pipeline

-- The metrics of each task (the loss's `task`), the first ones its default; top<K> is a
-- classification metric too.
local METRICS = {
    classification = {"accuracy", "precision", "recall", "f1", "confusion"},
    regression = {"mae", "rmse", "r2"},
    multilabel = {"accuracy", "exact_match"},
}
local DEFAULT_METRICS = {classification = {"accuracy"}, regression = {"mae", "rmse"},
    multilabel = {"accuracy"}}
local LOSSES_OF = {classification = "cross_entropy, nll", regression = "mse, l1, smooth_l1, huber",
    multilabel = "bce_with_logits"}
local METRIC_NAMES = {}
do
    local seen = {}
    for _, task in ipairs{"classification", "regression", "multilabel"} do
        for _, m in ipairs(METRICS[task]) do
            if not seen[m] then METRIC_NAMES[#METRIC_NAMES + 1], seen[m] = m, true end
        end
    end
end

local function top_k(m) local k = m:match("^top(%d+)$") return k and tonumber(k) >= 1 end

-- Is metric m one of the task's?
local function metric_of(task, m)
    if task == "classification" and top_k(m) then return true end
    for _, name in ipairs(METRICS[task]) do if name == m then return true end end
    return false
end
local function is_metric(m)
    for task in pairs(METRICS) do if metric_of(task, m) then return true end end
    return false
end

local metric_t = {
    desc = "a metric name (" .. table.concat(METRIC_NAMES, ", ") .. " or top<K>)",
    check = function(v)
        if type(v) == "string" and is_metric(v) then return v end
        local hint = type(v) == "string" and S.suggest(v, METRIC_NAMES)
        return nil, " must be one of " .. table.concat(METRIC_NAMES, ", ") .. " or top<K>, got "
            .. S.repr(v) .. (hint and " (did you mean '" .. hint .. "'?)" or "")
    end,
    coerce = function(s) return s end,
}
local metrics_t = S.list(metric_t, {scalar = true})

local pipeline_name_t = {
    desc = "a non-empty string without '/' (it names the run folder)",
    check = function(v)
        if type(v) == "string" and v ~= "" and v ~= "." and v ~= ".." and not v:find("/") then return v end
    end,
    coerce = function(s) return s end,
}

local DEFAULT_MAX_SKIPS = 10
local pipeline_spec = S.spec("pipeline", {
    {"name", pipeline_name_t, default = function()
        local file = S.script_file()
        return file and file:gsub("%.lua$", "") or "run"
    end},
    {"seed", nonneg_int, default = 0},
    {"data", S.record(data_entry, "a table {train = ..., valid = ..., batch_size = ...}"), required = true},
    {"model", kind_t("nn.", "an nn layer (e.g. nn.sequential{...})"), required = true},
    {"loss", kind_t("loss.", "a loss (e.g. tk.loss.cross_entropy{})", "loss"), required = true},
    {"optimizer", kind_t("optim.", "an optimizer (e.g. tk.optim.adam{})", "optim"), required = true},
    {"schedule", kind_t("sched.", "a schedule (e.g. tk.sched.cosine{})", "sched"),
        default = function() return tk.sched.constant() end},
    {"epochs", posint, default = 10},
    {"metrics", metrics_t, default = function(p) return S.copy(DEFAULT_METRICS[p.loss.task]) end},
    {"clip_grad_norm", positive},
    {"clip_grad_value", positive},
    {"accumulate", posint, default = 1},
    -- Data-parallel runs keep batch-norm statistics per rank (PyTorch DDP's default); true
    -- takes them over every rank's rows (SyncBatchNorm). One process: no effect.
    {"sync_batch_norm", S.boolean, default = false},
    {"save", S.record(save_entry), default = function() return save_entry.build{} end},
    {"early_stop", S.record(early_entry)},
    {"on_nonfinite", S.enum{"stop", "skip"}, default = "stop"},
    -- skipping never runs unbounded: a run whose every loss is NaN must not end as a success
    {"max_skips", posint, default = function(p)
        if p.on_nonfinite == "skip" then return DEFAULT_MAX_SKIPS end
    end},
    {"init", init_t},
    {"threads", posint},
    {"tensorboard", S.boolean, default = true},
    {"log_every", posint},
})

-- Cross-field rules, checked on the resolved pipeline (and again after every --set).
local function check_pipeline(p)
    local task = p.loss.task
    local has = {}
    for _, m in ipairs(p.metrics) do
        if has[m] then S.fail("pipeline", "metric '" .. m .. "' is listed twice") end
        has[m] = true
        if not metric_of(task, m) then
            local needs = metric_of("classification", m) and "classification"
                or metric_of("regression", m) and "regression" or "multilabel"
            S.fail("pipeline", string.format("metric '%s' needs a %s loss; %s is a %s loss (its "
                .. "metrics: %s; %s losses: %s)", m, needs, p.loss._kind, task,
                table.concat(METRICS[task], ", "), needs, LOSSES_OF[needs]))
        end
    end
    -- The labels follow the loss; regression = true on a source only confirms it.
    for _, split in ipairs{"train", "valid", "test"} do
        local d = p.data[split]
        if d and d.regression and task == "classification" then
            S.fail("pipeline", string.format("data.%s has regression = true but %s needs class labels",
                split, p.loss._kind))
        end
    end
    if p.save.best == nil then p.save.best = p.data.valid and best_entry.build{} or false end
    local monitors = {
        {"save.best", p.save.best and p.save.best.monitor},
        {"early_stop", p.early_stop and p.early_stop.monitor},
        {p.schedule._kind, p.schedule.monitor, p.schedule._where},
    }
    for _, m in ipairs(monitors) do
        local ctx, monitor, where = m[1], m[2], m[3]
        if monitor then
            local split, metric = monitor:match("^(%a+)%.(.+)$")
            if split == "valid" and not p.data.valid then
                S.fail(ctx, string.format("monitor '%s' needs data.valid (or monitor 'train.%s')", monitor,
                    metric), where)
            end
            if metric == "confusion" then
                S.fail(ctx, "monitor '" .. monitor .. "': the confusion matrix is not a single number", where)
            end
            if metric ~= "loss" and not has[metric] then
                local known = {"loss"}
                for m in pairs(has) do known[#known + 1] = m end
                local near = S.suggest(metric, known)
                if near then
                    S.fail(ctx, string.format("monitor '%s' names no metric (did you mean '%s.%s'?)",
                        monitor, split, near), where)
                end
                S.fail(ctx, string.format("monitor '%s' needs '%s' in metrics", monitor, metric), where)
            end
        end
    end
    if p.max_skips and p.on_nonfinite ~= "skip" then
        S.fail("pipeline", "max_skips needs on_nonfinite = 'skip'")
    end
    -- Traces graph functions now, so their mistakes surface when the script runs.
    tk.lower(p.model)
end

local pipeline_entry = {spec = pipeline_spec}
-- The default max_skips is dropped, so that --set on_nonfinite=stop does not keep it.
function pipeline_entry.unbuild(obj)
    local raw = S.shallow_unbuild(obj)
    if raw.max_skips == DEFAULT_MAX_SKIPS then raw.max_skips = nil end
    return raw
end
function pipeline_entry.build(raw)
    if type(raw) ~= "table" or getmetatable(raw) or rawget(raw, "_kind") then
        S.fail("pipeline", "expects a table of options, got " .. got(raw))
    end
    local p = S.validate(pipeline_spec, raw)
    check_pipeline(p)
    p._kind = "pipeline"
    p._where = raw._where or S.where()
    return p
end

-- The tables tk.pipeline built (tk.set changes them in place): the host accepts only these,
-- never a look-alike such as {_kind = "pipeline"}.
local built = setmetatable({}, {__mode = "k"})

function tk.pipeline(raw, ...)
    S.tail_called(tk.pipeline, "pipeline%s*[{(\"']")
    local extra, first_extra = select("#", ...), (...)
    local ok, p = pcall(function()
        if extra > 0 then
            S.fail("pipeline", string.format("unexpected argument #2 (%s); write tk.pipeline { ... }",
                S.repr(first_extra)))
        end
        return pipeline_entry.build(raw)
    end)
    S.lost = nil
    if not ok then error(p, 0) end
    built[p] = true
    return p
end

function tk.is_pipeline(v) return built[v] == true end

-- ---------------------------------------------------------------- tk.set

local function coerce(f, value)
    if type(value) ~= "string" then return value end   -- from the REPL: already a Lua value
    if value == "nil" then
        if f.required then S.fail(nil, f.name .. " is required") end
        return nil
    end
    if not f.type.coerce then
        S.fail(nil, string.format("%s is a table; set one of its options instead", f.name))
    end
    local v = f.type.coerce(value)
    local ok, tail
    if v ~= nil then ok, tail = f.type.check(v) end
    if ok == nil then
        local shown = v ~= nil and S.repr(v) or "'" .. value .. "'"
        S.fail(nil, f.name .. (tail or (" must be " .. f.type.desc .. ", got " .. shown)))
    end
    return v
end

-- Rebuilds `obj` (described by entry) with segs[i..] set to value, bottom-up, so every level
-- is validated again with the script's rules.
local function walk(obj, entry, segs, i, value)
    local key = segs[i]
    local f = entry.spec.by_name[key]
    if not f then S.fail(nil, S.unknown_key(key, entry.spec.names)) end
    if entry == pipeline_entry and key == "model" then
        S.fail(nil, "the model cannot be changed from the command line; edit the script")
    end
    local raw = entry.unbuild(obj)
    if i == #segs then
        raw[key] = coerce(f, value)
    elseif entry.items and entry.items[key] then
        local list = obj[key]
        local idx = math.tointeger(tonumber(segs[i + 1]))
        if not idx or not list[idx] then
            S.fail(nil, string.format("%s has %d entries; '%s' is not one of them", key, #list, segs[i + 1]))
        end
        if i + 1 == #segs then S.fail(nil, string.format("name an option of %s %d", key, idx)) end
        raw[key][idx] = walk(list[idx], entry.items[key], segs, i + 2, value)
    else
        local child = obj[key]
        local child_entry
        if type(child) == "table" and rawget(child, "_kind") then
            child_entry = S.kinds[child._kind]
        else
            child_entry = f.type.record
        end
        if not child_entry then S.fail(nil, string.format("'%s' has no options", key)) end
        if not child then child = child_entry.build{} end
        raw[key] = walk(child, child_entry, segs, i + 1, value)
    end
    return entry.build(raw)
end

-- tk.set(pipeline, "optimizer.lr", "3e-4"): applies one override in place (and returns the
-- pipeline). Errors read "--set optimizer.lr: ...".
function tk.set(p, path, value)
    if type(p) ~= "table" or p._kind ~= "pipeline" then error("tk.set: expects a pipeline", 2) end
    if type(path) ~= "string" then error("tk.set: expects a key path string", 2) end
    local segs = {}
    for seg in (path .. "."):gmatch("([^.]*)%.") do segs[#segs + 1] = seg end
    S.override = "--set " .. path
    local ok, res = pcall(function()
        for _, seg in ipairs(segs) do
            if seg == "" then S.fail(nil, "malformed key (expected names joined by '.')") end
        end
        return walk(p, pipeline_entry, segs, 1, value)
    end)
    S.override = nil
    if not ok then error(res, 0) end
    for k in pairs(p) do p[k] = nil end
    for k, v in pairs(res) do p[k] = v end
    return p
end

-- ---------------------------------------------------------------- tk.describe

local function scalar(v)
    if type(v) == "number" then return S.fmtnum(v) end
    if type(v) == "function" then return "<function>" end
    return tostring(v)
end

local function is_flat_list(v)
    if #v == 0 and next(v) ~= nil then return false end
    for k, x in pairs(v) do
        if math.type(k) ~= "integer" or type(x) == "table" then return false end
    end
    return true
end

local function flat_list(v)
    local parts = {}
    for i, x in ipairs(v) do parts[i] = scalar(x) end
    return "[" .. table.concat(parts, ", ") .. "]"
end

local function header(v)
    local where = rawget(v, "_where")
    local kind = rawget(v, "_kind")
    local text = kind or ""
    if where then text = text .. (kind and " " or "") .. "(" .. where .. ")" end
    return text
end

local emit_table

local function emit_value(out, indent, key, v)
    local pad = string.rep("  ", indent)
    if type(v) ~= "table" then
        out[#out + 1] = pad .. key .. ": " .. scalar(v)
    elseif is_flat_list(v) then
        out[#out + 1] = pad .. key .. ": " .. flat_list(v)
    elseif tk.nn.is_layer(v) then
        out[#out + 1] = pad .. key .. ": " .. header(v)
        for i, node in ipairs(tk.lower(v)) do
            local inputs = {}
            for j, x in ipairs(node.inputs) do inputs[j] = "#" .. x end
            local attrs = {}
            for _, k in ipairs(S.sorted_keys(node.attrs)) do
                local a = node.attrs[k]
                attrs[#attrs + 1] = k .. "=" .. (type(a) == "table" and flat_list(a) or scalar(a))
            end
            out[#out + 1] = string.format("%s  #%d %s = %s(%s) <- %s%s%s", pad, i,
                node.name == "" and "''" or node.name, node.op, table.concat(attrs, ", "),
                table.concat(inputs, ", "), node.shared and " shared" or "",
                node.where and "  (" .. node.where .. ")" or "")
        end
    else
        local h = header(v)
        out[#out + 1] = pad .. key .. ":" .. (h ~= "" and " " .. h or "")
        -- a loss shows its options, not its attrs wrapper
        emit_table(out, indent + 1, (rawget(v, "op") and rawget(v, "attrs")) or v)
    end
end

function emit_table(out, indent, t)
    for _, k in ipairs(S.sorted_keys(t)) do
        local skip = type(k) == "string" and (k:sub(1, 1) == "_" or k == "type" or k == "op")
        if not skip then emit_value(out, indent, math.type(k) and "[" .. k .. "]" or k, t[k]) end
    end
end

-- tk.describe(pipeline): the resolved configuration as deterministic text (sorted keys,
-- the model as its lowered node list).
function tk.describe(p)
    local out = {header(p)}
    emit_table(out, 0, p)
    return table.concat(out, "\n") .. "\n"
end

return tk
