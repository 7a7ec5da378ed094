-- Validation toolkit shared by every tk constructor: value types (checking, and coercion of
-- --set strings), strict option records with defaults, did-you-mean suggestions, and errors
-- that point at the user's script line instead of at the stdlib.
local S = {}

-- Chunk sources of the stdlib: frames running these are skipped when looking for the user's
-- line, so an error raised three calls deep still names the line the user wrote.
local internal = {}
function S.internal(source) internal[source] = true end
S.internal(debug.getinfo(1, "S").source)

S.root = nil      -- the tk module (for tk.script_dir); set by init.lua
S.override = nil  -- while tk.set runs: "--set key.path", used instead of a script line
S.kinds = {}      -- _kind -> {spec, build(raw), unbuild(obj)} for tables tk.set can rebuild

function S.register(kind, entry) S.kinds[kind] = entry end

-- constructor function -> its spec, for every public constructor that takes options (the
-- stdlib tests walk this to prove no positional value is ever dropped).
S.public = {}

-- ---------------------------------------------------------------- where the user is

S.lost = nil       -- while a tail-called tk.pipeline runs: {func, info} (see S.tail_called)
local last_user      -- the last user frame found, remembered for S.tail_called

local function user_frame()
    for level = 2, math.huge do
        local info = debug.getinfo(level, "Slf")
        if not info then return nil end
        if S.lost and info.func == S.lost.func then return S.lost.info end
        if info.what ~= "C" and not internal[info.source] and info.currentline > 0 then
            last_user = info
            return info
        end
    end
end

-- `return tk.pipeline {...}` is a tail call: the script's frame is gone by the time the
-- pipeline validates, and the frame below it belongs to the host. `func` (the public
-- function, which must call this first) then stands for the script: its file is the one the
-- argument constructors just ran in, and its line is found in the file's text.
function S.tail_called(func, pattern)
    if not debug.getinfo(2, "t").istailcall then return end
    -- No constructor ran first (`return tk.pipeline()`): the script the host runs stands in.
    local host = S.root and rawget(S.root, "script_path")
    local user = last_user or (host and {source = "@" .. host, short_src = host})
    if not user then return end
    local info = {source = user.source, short_src = user.short_src, currentline = 0}
    local f = user.source:sub(1, 1) == "@" and io.open(user.source:sub(2), "r")
    if f then
        local n = 0
        for line in f:lines() do
            n = n + 1
            if line:find(pattern) and not line:find("^%s*%-%-") then
                info.currentline = n
                break
            end
        end
        f:close()
    end
    S.lost = {func = func, info = info}
end

-- The script's tokens that matter for finding a key: names and brackets with their lines
-- (strings, comments and numbers are skipped).
local function tokens(text)
    local toks, i, line, n = {}, 1, 1, #text
    local function skip_to(e)
        for _ in text:sub(i, e):gmatch("\n") do line = line + 1 end
        i = e + 1
    end
    while i <= n do
        local c = text:sub(i, i)
        local long = text:match("^%[(=*)%[", i) or text:match("^%-%-%[(=*)%[", i)
        if long then
            local _, e = text:find("]" .. long .. "]", i, true)
            skip_to(e or n)
        elseif text:sub(i, i + 1) == "--" then
            skip_to((text:find("\n", i, true) or n + 1) - 1)
        elseif c == '"' or c == "'" then
            local j = i + 1
            while j <= n and text:sub(j, j) ~= c and text:sub(j, j) ~= "\n" do
                j = j + (text:sub(j, j) == "\\" and 2 or 1)
            end
            skip_to(j)
        elseif c:match("[%a_]") then
            local w = text:match("^[%w_]+", i)
            toks[#toks + 1] = {w, line}
            i = i + #w
        elseif c:match("%d") then
            i = i + #text:match("^[%w_.]+", i)
        else
            if c == "\n" then line = line + 1 elseif not c:match("%s") then toks[#toks + 1] = {c, line} end
            i = i + 1
        end
    end
    return toks
end

-- The line of `key` in the tail-called pipeline's table, inside the nested table that `ctx`
-- names ("data", "save.best"; "pipeline" is the table itself), found in the script's text:
-- a nested plain table keeps no line of its own. nil when the text does not say.
local function key_line(info, ctx, key)
    local f = info.source:sub(1, 1) == "@" and io.open(info.source:sub(2), "r")
    if not f then return nil end
    local toks = tokens(f:read("a"))
    f:close()
    local path = {}
    for part in (ctx or ""):gmatch("[^.]+") do path[#path + 1] = part end
    if path[1] == "pipeline" then path = {} end
    local function scan(s, level)    -- toks[s] is the table's "{"
        local depth = 0
        for j = s, #toks do
            local t, nxt = toks[j][1], toks[j + 1] and toks[j + 1][1]
            if t == "{" or t == "(" or t == "[" then
                depth = depth + 1
            elseif t == "}" or t == ")" or t == "]" then
                depth = depth - 1
                if depth == 0 then return nil end
            elseif depth == 1 and nxt == "=" and (toks[j + 2] or {})[1] ~= "=" and t:match("^[%a_]") then
                if level > #path then
                    if t == key then return toks[j][2] end
                elseif t == path[level] and (toks[j + 2] or {})[1] == "{" then
                    return scan(j + 2, level + 1)
                end
            end
        end
    end
    for j, t in ipairs(toks) do
        if t[1] == "pipeline" and t[2] >= info.currentline then
            local s = toks[j + 1] and toks[j + 1][1] == "(" and j + 2 or j + 1
            return toks[s] and toks[s][1] == "{" and scan(s, 1) or nil
        end
    end
end

-- The script path without the script folder ("mlp.lua"), so recorded lines stay short and
-- do not depend on where the script was run from.
local function display_source(info)
    local c = info.source:sub(1, 1)
    local path = (c == "@" or c == "=") and info.source:sub(2) or info.short_src
    local dir = S.root and S.root.script_dir
    if type(dir) == "string" and dir ~= "" then
        dir = dir:gsub("/+$", "") .. "/"
        if path:sub(1, #dir) == dir then return path:sub(#dir + 1) end
    end
    return path:match("[^/]*$")
end

-- "mlp.lua:12" for the innermost user frame, or nil when no user code is on the stack.
function S.where()
    local info = user_frame()
    return info and (display_source(info) .. (info.currentline > 0 and ":" .. info.currentline or ""))
end

-- The user's script file name ("mlp.lua"), or nil.
function S.script_file()
    local info = user_frame()
    return info and display_source(info)
end

-- Raises "<user file:line>: <ctx>: <msg>". `where` (a recorded _where) replaces the stack
-- lookup when the mistake belongs to a table built earlier. Under tk.set the prefix is the
-- "--set path" being applied instead.
-- `key` (the option the message is about) lets a mistake inside the tail-called pipeline's
-- nested tables name the key's own line instead of the `return tk.pipeline {` line.
function S.fail(ctx, msg, where, key)
    local text = ctx and (ctx .. ": " .. msg) or msg
    if S.override then error(S.override .. ": " .. text, 0) end
    if not where then
        local info = user_frame()
        local line = info and info.currentline or 0
        if key and info and S.lost and info == S.lost.info then
            line = key_line(info, ctx, key) or line
        end
        where = info and (info.short_src .. (line > 0 and ":" .. line or ""))
    end
    error(where and (where .. ": " .. text) or text, 0)
end

-- ---------------------------------------------------------------- formatting

-- Shortest text that reads back as the same number; floats keep a '.', 'e' or "inf" so they
-- stay distinguishable from integers.
function S.fmtnum(x)
    if math.type(x) == "integer" then return tostring(x) end
    if x ~= x then return "nan" end
    if x == math.huge then return "inf" elseif x == -math.huge then return "-inf" end
    for p = 1, 17 do
        local s = string.format("%." .. p .. "g", x)
        if tonumber(s) == x then
            if not s:find("[.e]") then s = s .. ".0" end
            return s
        end
    end
end

function S.repr(v)
    local t = type(v)
    if t == "string" then return "'" .. v .. "'" end
    if t == "number" then return S.fmtnum(v) end
    if t == "table" then
        local mt = getmetatable(v)
        if mt and mt.__name == "tk.tensor" then return "a graph tensor" end
        local kind = rawget(v, "_kind")
        if kind then return kind .. "{...}" end
        return "a table"
    end
    if t == "function" then return "a function" end
    return tostring(v)
end

-- Deep copy of plain data; constructor results (tables with _kind) are shared, not copied.
function S.copy(v)
    if type(v) ~= "table" or rawget(v, "_kind") or getmetatable(v) then return v end
    local out = {}
    for k, x in pairs(v) do out[k] = S.copy(x) end
    return out
end

function S.sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
        if type(a) == type(b) then return a < b end
        return type(a) == "number"
    end)
    return keys
end

-- ---------------------------------------------------------------- suggestions

-- Optimal string alignment distance (Levenshtein plus adjacent transpositions).
local function distance(a, b)
    local prev2, prev, cur = {}, {}, {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
        cur = {[0] = i}
        for j = 1, #b do
            local cost = a:byte(i) == b:byte(j) and 0 or 1
            local d = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
                d = math.min(d, prev2[j - 2] + 1)
            end
            cur[j] = d
        end
        prev2, prev = prev, cur
    end
    return prev[#b]
end

-- Names other libraries use for our keys: an edit distance alone would never lead from
-- 'learning_rate' to 'lr'.
S.aliases = {
    learning_rate = "lr", learningrate = "lr", rate = "p", drop_prob = "p", dropout = "p",
    units = "out_features", out_dim = "out_features", output_dim = "out_features",
    in_dim = "in_features", input_dim = "in_features", filters = "out_channels",
    kernel = "kernel_size", strides = "stride", use_bias = "bias", epsilon = "eps",
    beta1 = "betas", beta_1 = "betas", beta2 = "betas", beta_2 = "betas",
    decay = "weight_decay", l2 = "weight_decay", wd = "weight_decay",
    num_epochs = "epochs", max_epochs = "epochs", n_epochs = "epochs",
    bs = "batch_size", batch = "batch_size", step = "step_size", milestone = "milestones",
    lr_min = "min_lr", warmup = "warmup_steps", warmup_iters = "warmup_steps",
    target = "label", targets = "label", y = "label", columns = "features",
    grad_clip = "clip_grad_norm", clip_norm = "clip_grad_norm", max_norm = "clip_grad_norm",
    gradient_clip_val = "clip_grad_value", accumulate_grad_batches = "accumulate",
    gradient_accumulation_steps = "accumulate", random_seed = "seed",
    optim = "optimizer", opt = "optimizer", scheduler = "schedule", lr_scheduler = "schedule",
    sched = "schedule", criterion = "loss", loss_fn = "loss", net = "model",
}

-- The candidate the user most likely meant by `key`, or nil when none is close.
function S.suggest(key, candidates)
    local lk = key:lower()
    local sorted = {}
    for _, c in ipairs(candidates) do sorted[#sorted + 1] = c end
    table.sort(sorted)
    local best, bestd
    local function consider(spelling, c)
        local d = distance(lk, spelling:lower())
        if not bestd or d < bestd then best, bestd = c, d end
    end
    for _, c in ipairs(sorted) do consider(c, c) end
    local valid = {}
    for _, c in ipairs(sorted) do valid[c] = true end
    for _, alias in ipairs(S.sorted_keys(S.aliases)) do
        if valid[S.aliases[alias]] then consider(alias, S.aliases[alias]) end
    end
    local limit = #key <= 3 and 1 or (#key <= 9 and 2 or 3)
    if bestd and bestd <= limit and bestd < #key then return best end
end

function S.unknown_key(key, candidates)
    local s = S.suggest(tostring(key), candidates)
    if s then return string.format("unknown key '%s' (did you mean '%s'?)", key, s) end
    local sorted = {}
    for _, c in ipairs(candidates) do sorted[#sorted + 1] = c end
    table.sort(sorted)
    return string.format("unknown key '%s' (valid keys: %s)", key, table.concat(sorted, ", "))
end

-- ---------------------------------------------------------------- value types
-- A type is {desc, check, coerce}. check(v) returns the normalised value, or nil plus an
-- optional message tail (" must be ..., got ..." or "[2] must be ..."); coerce(s) turns a
-- --set string into a Lua value for check, or returns nil.

local function bound_desc(noun, o)
    local lo = o.min and (o.min_open and "(" or "[") .. S.fmtnum(o.min)
    local hi = o.max and S.fmtnum(o.max) .. (o.max_open and ")" or "]")
    if lo and hi then return noun .. " in " .. lo .. ", " .. hi end
    if lo then return noun .. (o.min_open and " > " or " >= ") .. S.fmtnum(o.min) end
    if hi then return noun .. (o.max_open and " < " or " <= ") .. S.fmtnum(o.max) end
    return noun
end

local function in_bounds(v, o)
    if o.min and (v < o.min or (o.min_open and v == o.min)) then return false end
    if o.max and (v > o.max or (o.max_open and v == o.max)) then return false end
    return true
end

-- Finite number, stored as a float. o: min, max, min_open, max_open.
function S.number(o)
    o = o or {}
    return {
        desc = bound_desc("a number", o),
        check = function(v)
            if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return nil end
            if in_bounds(v, o) then return v + 0.0 end
        end,
        coerce = tonumber,
    }
end

-- Integers past 32 bits are refused where a field sets no max of its own: the host holds
-- counts and sizes as C ints and multiplies step counts in 64 bits (fuzz_values found
-- epochs = 2^63 - 1 overflowing there).
S.INT_LIMIT = 2147483647

-- Integer (an integral float is accepted and stored as an integer). o: min, max.
function S.integer(o)
    o = o or {}
    local desc = (o.min == 1 and not o.max) and "a positive integer" or bound_desc("an integer", o)
    local limit = o.max and math.maxinteger or S.INT_LIMIT
    return {
        desc = desc,
        check = function(v)
            local i = type(v) == "number" and math.tointeger(v)
            if i and (i > limit or i < -S.INT_LIMIT) then
                return nil, string.format(" must be %s %s %d, got %s", desc,
                    i > 0 and "up to" or "down to", i > 0 and limit or -S.INT_LIMIT, S.repr(v))
            end
            if i and in_bounds(i, o) then return i end
        end,
        coerce = tonumber,
    }
end

S.boolean = {
    desc = "true or false",
    check = function(v) if type(v) == "boolean" then return v end end,
    coerce = function(s)
        if s == "true" then return true elseif s == "false" then return false end
    end,
}

S.string = {
    desc = "a non-empty string",
    check = function(v) if type(v) == "string" and v ~= "" then return v end end,
    coerce = function(s) return s end,
}

S.func = {
    desc = "a function",
    check = function(v) if type(v) == "function" then return v end end,
}

function S.enum(values)
    local quoted = {}
    for i, v in ipairs(values) do quoted[i] = "'" .. v .. "'" end
    local desc = "one of " .. table.concat(quoted, ", ")
    return {
        desc = desc,
        values = values,
        check = function(v)
            for _, x in ipairs(values) do if v == x then return v end end
            local hint = type(v) == "string" and S.suggest(v, values)
            return nil, " must be " .. desc .. ", got " .. S.repr(v)
                .. (hint and " (did you mean '" .. hint .. "'?)" or "")
        end,
        coerce = function(s) return s end,
    }
end

local function is_sequence(v)
    if type(v) ~= "table" or getmetatable(v) or rawget(v, "_kind") then return false end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n == #v
end

-- List of elem. o: len (exact), min (count), scalar (a lone element is accepted as a list).
function S.list(elem, o)
    o = o or {}
    local desc = string.format("a list of %svalues, each %s", o.len and o.len .. " " or "", elem.desc)
    if o.scalar then desc = elem.desc .. " or " .. desc end
    return {
        desc = desc,
        list_valued = true,
        check = function(v)
            if o.scalar and not is_sequence(v) and elem.check(v) ~= nil then
                return {elem.check(v)}
            end
            if not is_sequence(v) then return nil end
            if (o.len and #v ~= o.len) or (o.min and #v < o.min) then return nil end
            local out = {}
            for i, x in ipairs(v) do
                local y, tail = elem.check(x)
                if y == nil then
                    return nil, string.format("[%d]%s", i, tail or " must be " .. elem.desc .. ", got " .. S.repr(x))
                end
                out[i] = y
            end
            return out
        end,
        coerce = function(s)
            local out = {}
            if s == "" then return out end
            for part in (s .. ","):gmatch("([^,]*),") do
                local x = elem.coerce(part:match("^%s*(.-)%s*$"))
                if x == nil then return nil end
                out[#out + 1] = x
            end
            return out
        end,
    }
end

-- One value or a pair of them, normalised to a two-element list (kernel_size = 3 -> {3, 3}).
function S.pair(elem)
    local two = S.list(elem, {len = 2})
    return {
        desc = elem.desc .. " or a pair of them",
        pair_valued = true,
        check = function(v)
            if type(v) == "table" then return (two.check(v)) end
            local x = elem.check(v)
            if x ~= nil then return {x, x} end
        end,
        coerce = function(s) if s:find(",") then return two.coerce(s) end return elem.coerce(s) end,
    }
end

-- The first alternative that accepts the value wins.
function S.union(alts, desc)
    return {
        desc = desc,
        check = function(v)
            for _, t in ipairs(alts) do
                local x = t.check(v)
                if x ~= nil then return x end
            end
        end,
        coerce = function(s)
            for _, t in ipairs(alts) do
                local x = t.coerce and t.coerce(s)
                if x ~= nil and t.check(x) ~= nil then return x end
            end
        end,
    }
end

-- ---------------------------------------------------------------- monitors

-- Metrics that improve by going down.
local lower_is_better = {loss = true, mae = true, rmse = true}

-- The mode a monitor is optimised in when the user does not say: losses and errors go down,
-- everything else (accuracy, f1, r2, ...) goes up.
function S.infer_mode(monitor)
    local metric = monitor:match("^[^.]+%.(.+)$") or monitor
    return lower_is_better[metric] and "min" or "max"
end

-- "train.loss", "valid.accuracy", "valid.top5", ...; the pipeline checks that the metric and
-- the split exist.
S.monitor_t = {
    desc = "a name like 'valid.loss' or 'train.accuracy'",
    check = function(v)
        if type(v) == "string" and (v:match("^train%.[%w_]+$") or v:match("^valid%.[%w_]+$")) then
            return v
        end
    end,
    coerce = function(s) return s end,
}
S.mode_t = S.enum{"min", "max"}

-- ---------------------------------------------------------------- records

-- fields: list of {name, type, default = v | function(resolved_so_far), required = bool}.
-- o.forms: the positional forms, each a list of field names filled in that order; a form
--   accepts from `min` (default: all of them) to all of its names, so {"in", "out", "bias",
--   min = 2} reads f(in, out) and f(in, out, bias). A form with `variadic = true` has one
--   list field that takes every positional value (nn.reshape(1, 28, 28)).
-- o.positional: shorthand for the single form {..., min = 1}.
function S.spec(name, fields, o)
    o = o or {}
    local forms = o.forms or (o.positional and {S.copy(o.positional)}) or {}
    if o.positional then forms[1].min = 1 end
    local spec = {name = name, fields = {}, by_name = {}, names = {}, forms = forms}
    for _, f in ipairs(fields) do
        local field = {name = f[1], type = f[2], default = f.default, required = f.required}
        spec.fields[#spec.fields + 1] = field
        spec.by_name[field.name] = field
        spec.names[#spec.names + 1] = field.name
    end
    for _, form in ipairs(forms) do
        for _, n in ipairs(form) do
            assert(spec.by_name[n], name .. ": positional form names unknown field " .. n)
        end
    end
    return spec
end

-- "nn.linear(out_features), nn.linear(in_features, out_features[, bias])", or a note that
-- the constructor takes options by name only.
function S.forms_text(spec)
    if #spec.forms == 0 then
        return spec.name .. "{...} with named options only"
    end
    local texts = {}
    for _, form in ipairs(spec.forms) do
        if form.variadic then
            texts[#texts + 1] = string.format("%s(%s...)", spec.name, form[1])
        else
            local min = form.min or #form
            local text = table.concat(form, ", ", 1, min)
            for i = min + 1, #form do text = text .. (i == 1 and "[" or "[, ") .. form[i] end
            texts[#texts + 1] = spec.name .. "(" .. text .. string.rep("]", #form - min) .. ")"
        end
    end
    return table.concat(texts, ", ")
end

local function plain_table(v)
    return type(v) == "table" and not getmetatable(v) and not rawget(v, "_kind")
end

-- Only consecutive integer keys from 1: a list value such as {28, 28} or {30, 60}.
local function only_list(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n > 0 and n == #t
end

-- Only string keys: a trailing table of named options, as in nn.linear(13, 32, {bias = false}).
local function only_names(t)
    for k in pairs(t) do if type(k) ~= "string" then return false end end
    return true
end

-- The form that reads `count` positional values; nil when there are too many for every form.
-- Fewer than any form needs picks the shortest, so the missing field is reported by name.
local function pick_form(spec, count)
    local shortest
    for _, form in ipairs(spec.forms) do
        if form.variadic then return form end
        if count >= (form.min or #form) and count <= #form then return form end
        if not shortest or (form.min or #form) < (shortest.min or #shortest) then shortest = form end
    end
    if shortest and count < (shortest.min or #shortest) then return shortest end
end

local function max_positional(spec)
    local n = 0
    for _, form in ipairs(spec.forms) do n = math.max(n, #form) end
    return n
end

-- Turns what the user passed to a constructor into a table of named options: positional
-- values (as arguments, or as the array part of a single table) are matched to one of the
-- spec's forms, and any value that no form reads is an error naming its position.
function S.args(spec, ...)
    local n = select("#", ...)
    if n == 0 then return {} end
    local args = {...}
    local pos, named, count = {}, {}, 0
    -- A lone list is the value of the first positional field when that field holds a list
    -- (nn.layer_norm({28, 28}), sched.multistep({30, 60})) or is a pair that is the only
    -- positional value (nn.adaptive_avg_pool2d({7, 7})); otherwise its items are positional
    -- values, as in nn.max_pool2d{3, 2} == nn.max_pool2d(3, 2).
    local first = spec.forms[1] and spec.by_name[spec.forms[1][1]]
    local lone_value = first and n == 1 and plain_table(args[1]) and only_list(args[1])
        and (first.type.list_valued or (first.type.pair_valued and max_positional(spec) == 1))
    if n == 1 and plain_table(args[1]) and not lone_value then
        for k, v in pairs(args[1]) do
            if math.type(k) == "integer" then
                if k < 1 then S.fail(spec.name, string.format("unexpected key [%d] (%s)", k, S.repr(v))) end
                pos[k] = v
                count = math.max(count, k)
            else
                named[k] = v
            end
        end
    else
        if n > 1 and plain_table(args[n]) and only_names(args[n]) then
            named = args[n]
            n = n - 1
        end
        for i = 1, n do pos[i] = args[i] end
        count = n
    end
    for i = 1, count do
        if pos[i] == nil then
            S.fail(spec.name, string.format("positional argument #%d is nil (a misspelled variable?)", i))
        end
    end
    if count == 0 then return named end
    local form = pick_form(spec, count)
    if not form then
        local extra = max_positional(spec) + 1
        S.fail(spec.name, string.format("unexpected positional argument #%d (%s); accepted forms: %s",
            extra, S.repr(pos[extra]), S.forms_text(spec)))
    end
    local out = {}
    for k, v in pairs(named) do out[k] = v end
    local function put(name, v)
        if named[name] ~= nil then S.fail(spec.name, name .. " is given twice") end
        out[name] = v
    end
    if form.variadic then
        put(form[1], (count == 1 and type(pos[1]) == "table") and pos[1] or pos)
    else
        for i = 1, count do put(form[i], pos[i]) end
    end
    return out
end

local function check_field(ctx, f, v)
    local x, tail = f.type.check(v)
    if x == nil then
        S.fail(ctx, f.name .. (tail or (" must be " .. f.type.desc .. ", got " .. S.repr(v))), nil, f.name)
    end
    return x
end

-- Strict validation: unknown keys fail with a suggestion, types are checked, defaults filled.
-- Returns a new table (the raw `_where`, kept by tk.set rebuilds, is not copied).
function S.validate(spec, raw, ctx)
    ctx = ctx or spec.name
    if type(raw) ~= "table" or getmetatable(raw) or rawget(raw, "_kind") then
        S.fail(ctx, "expects a table of options, got " .. S.repr(raw))
    end
    for _, k in ipairs(S.sorted_keys(raw)) do
        if type(k) ~= "string" then
            S.fail(ctx, string.format("unexpected positional value #%s (%s)", tostring(k), S.repr(raw[k])))
        end
        if k ~= "_where" and not spec.by_name[k] then S.fail(ctx, S.unknown_key(k, spec.names), nil, k) end
    end
    local out = {}
    for _, f in ipairs(spec.fields) do
        local v = raw[f.name]
        if v == nil then
            if f.required then S.fail(ctx, f.name .. " is required") end
            local d = f.default
            if type(d) == "function" then d = d(out) else d = S.copy(d) end
            -- through check too, so that a default written as 1 is stored as a number 1.0
            if d ~= nil and not f.type.record then
                local c = f.type.check(d)
                if c ~= nil then d = c end
            end
            out[f.name] = d
        else
            out[f.name] = check_field(ctx, f, v)
        end
    end
    return out
end

-- A record usable as a field type: a nested plain table such as the pipeline's `save`.
-- entry: {spec, build(raw), unbuild(obj)}; kept on the type so tk.set can walk into it.
function S.record(entry, desc)
    return {
        desc = desc or ("a table of " .. entry.spec.name .. " options"),
        record = entry,
        -- Only plain tables reach build (which raises its own precise errors), so that a
        -- union can still try its other alternatives on anything else.
        check = function(v)
            if type(v) == "table" and not getmetatable(v) and not rawget(v, "_kind") then
                return entry.build(v)
            end
        end,
    }
end

-- unbuild for plain records: the resolved fields are valid raw input for build again.
function S.shallow_unbuild(obj)
    local raw = {}
    for k, v in pairs(obj) do
        if type(k) ~= "string" or k:sub(1, 1) ~= "_" or k == "_where" then raw[k] = S.copy(v) end
    end
    return raw
end

return S
