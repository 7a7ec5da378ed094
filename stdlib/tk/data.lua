-- Dataset constructors (tk.data): CSV files, IDX files (MNIST format, optionally .gz), image
-- folders, NumPy .npy/.npz arrays and seeded splits of the training set. Paths are resolved when the script runs, so a missing
-- file is reported at the user's line before anything is loaded.
local S = require "tk.schema"
S.internal(debug.getinfo(1, "S").source)

local data = {}

local DATASETS = "/usr/share/datasets"

-- true when `path` opens; nil when it is not there; false and the reason ("Permission
-- denied") when it is there but cannot be read, which must not read as "not found".
local function exists(path)
    local f, msg, code = io.open(path, "rb")
    if f then f:close() return true end
    if code == 2 or code == 20 then return nil end   -- ENOENT, ENOTDIR
    return false, msg:match(": ([^:]*)$") or msg
end

local function unreadable(ctx, what, path, reason)
    S.fail(ctx, string.format("%s file '%s' cannot be read: %s", what, path, reason))
end

-- Absolute form of a path built from a relative script folder (the host normally passes an
-- absolute one); "./" segments are dropped so the stored path is clean.
local function absolute(path)
    if path:sub(1, 1) ~= "/" then
        local cwd = os.getenv("PWD")
        if cwd then path = cwd .. "/" .. path end
    end
    path = path:gsub("/%./", "/"):gsub("/%./", "/"):gsub("//+", "/")
    return path
end

-- Looks for `path` relative to the script folder, then $TK_DATA, then /usr/share/datasets.
local function resolve(ctx, what, path)
    if path:sub(1, 1) == "/" then
        local ok, reason = exists(path)
        if ok then return path end
        if ok == false then unreadable(ctx, what, path, reason) end
        S.fail(ctx, string.format("%s file '%s' not found", what, path))
    end
    local dir = S.root and S.root.script_dir
    if type(dir) ~= "string" or dir == "" then dir = "." end
    local env = os.getenv("TK_DATA")
    local places = {
        {dir, "script folder"},
        {env ~= "" and env or nil, "$TK_DATA"},
        {DATASETS, nil},
    }
    local looked = {}
    for _, place in ipairs(places) do
        local base, label = place[1], place[2]
        if base then
            local full = base:gsub("/+$", "") .. "/" .. path
            local ok, reason = exists(full)
            if ok then return absolute(full) end
            if ok == false then unreadable(ctx, what, full, reason) end
            looked[#looked + 1] = label and string.format("%s (%s)", full, label) or full
        else
            looked[#looked + 1] = label .. " (not set)"
        end
    end
    S.fail(ctx, string.format("%s file '%s' not found; looked in %s", what, path, table.concat(looked, ", ")))
end

local posint = S.integer{min = 1}
local column_t = S.union({posint, S.string}, "a column name or a 1-based column number")

-- normalize = "standard" | "minmax" | {mean = number | list, std = number | list}
local stats_spec = S.spec("normalize", {
    {"mean", S.list(S.number(), {scalar = true, min = 1}), required = true},
    {"std", S.list(S.number{min = 0, min_open = true}, {scalar = true, min = 1}), required = true},
})
local stats_entry = {spec = stats_spec, unbuild = S.shallow_unbuild}
function stats_entry.build(raw)
    local v = S.validate(stats_spec, raw)
    if #v.mean ~= #v.std and #v.mean ~= 1 and #v.std ~= 1 then
        S.fail("normalize", string.format("mean has %d values but std has %d", #v.mean, #v.std))
    end
    return v
end
local normalize_t = S.union({S.enum{"standard", "minmax"}, S.record(stats_entry)},
    "'standard', 'minmax' or {mean = ..., std = ...}")

-- Defines tk.data.<short> from a spec, a post-check and the names of its path fields.
local function define(short, spec, o)
    local kind = "data." .. short
    local entry = {spec = spec, unbuild = S.shallow_unbuild}
    function entry.build(raw)
        local d = S.validate(spec, raw)
        if o.check then o.check(d) end
        for _, field in ipairs(o.paths or {}) do
            d[field] = resolve(kind, field, d[field])
        end
        d._kind = kind
        d._where = raw._where or S.where()
        return d
    end
    S.register(kind, entry)
    data[short] = function(...) return entry.build(S.args(spec, ...)) end
    S.public[data[short]] = spec
end

local csv_spec = S.spec("data.csv", {
    {"path", S.string, required = true},
    {"delimiter", {
        desc = "a one-character string",
        check = function(v) if type(v) == "string" and #v == 1 then return v end end,
        coerce = function(s) return s == "\\t" and "\t" or s end,
    }, default = ","},
    {"skip_rows", S.integer{min = 0}, default = 0},
    {"header", S.boolean, default = false},
    -- column name | 1-based number | list of those | a data.csv{...} of a separate label file
    {"label", S.union({column_t, S.list(column_t, {min = 1}), {
        desc = "a data.csv{...} table",
        check = function(v) if type(v) == "table" and rawget(v, "_kind") == "data.csv" then return v end end,
    }}, "a column name or number, a list of them, or a data.csv{...} of a label file")},
    {"features", S.list(column_t, {min = 1})},
    {"normalize", normalize_t},
    -- The labels follow the loss's task; true only confirms a regression loss.
    {"regression", S.boolean, default = false},
    -- stream = true: rows stay in the file, read back in shards of shard_size rows and
    -- shuffled per window of shuffle_buffer samples (README, Data: streamed CSV)
    {"stream", S.boolean, default = false},
    {"shard_size", posint, default = 1024},
    {"shuffle_buffer", posint, default = 16384},
}, {positional = {"path"}})

local function names_need_header(d)
    local function check(v, what)
        if type(v) == "string" and not d.header then
            S.fail("data.csv", string.format("%s '%s' is a column name, which needs header = true", what, v))
        end
    end
    local labels = type(d.label) == "table" and not d.label._kind and d.label or {d.label}
    local seen = {}
    for _, v in ipairs(labels) do check(v, "label"); seen[v] = true end
    for _, v in ipairs(d.features or {}) do
        check(v, "feature")
        if seen[v] then S.fail("data.csv", "column " .. S.repr(v) .. " is both a label and a feature") end
    end
end

define("csv", csv_spec, {paths = {"path"}, check = names_need_header})

-- Augmentations, per sample on the train source only: augment = { data.random_crop{...},
-- data.random_flip{}, data.random_affine{...} }, applied in that order to the raw pixels
-- (before scale/normalize), like torchvision's RandomCrop, RandomHorizontalFlip and
-- RandomAffine(degrees = 0, translate = ...).
define("random_crop", S.spec("data.random_crop", {
    {"size", S.list(posint, {scalar = true, min = 1})},
    {"padding", S.list(S.integer{min = 0}, {scalar = true, min = 1})},
    {"fill", S.number(), default = 0.0},
}, {positional = {"size", "padding"}}), {check = function(d)
    local p = d.padding or {0}
    if #p == 1 then p = {p[1], p[1], p[1], p[1]}
    elseif #p == 2 then p = {p[1], p[2], p[1], p[2]}
    elseif #p ~= 4 then
        S.fail("data.random_crop", "padding must be one number, {left/right, top/bottom} or {left, top, right, bottom}, got " .. #p .. " values")
    end
    d.padding = p
    if d.size and #d.size == 1 then d.size = {d.size[1], d.size[1]} end
    if d.size and #d.size ~= 2 then
        S.fail("data.random_crop", "size must be {H, W} or one number, got " .. #d.size .. " values")
    end
end})
define("random_flip", S.spec("data.random_flip", {
    {"horizontal", S.boolean, default = true},
    {"p", S.number{min = 0, max = 1}, default = 0.5},
}, {positional = {"p"}}), {})
define("random_affine", S.spec("data.random_affine", {
    {"translate", S.list(S.number{min = 0, max = 1}, {len = 2}), required = true},
    {"fill", S.number(), default = 0.0},
}), {})
local augment_kinds = {["data.random_crop"] = true, ["data.random_flip"] = true, ["data.random_affine"] = true}
local augment_t = S.list({
    desc = "a data.random_crop{...}, data.random_flip{...} or data.random_affine{...}",
    check = function(v) if type(v) == "table" and augment_kinds[rawget(v, "_kind")] then return v end end,
}, {min = 1})

define("idx", S.spec("data.idx", {
    {"images", S.string, required = true},
    {"labels", S.string, required = true},
    {"scale", S.number(), default = 1.0},
    {"normalize", normalize_t},
    {"augment", augment_t},
}, {positional = {"images", "labels"}}), {paths = {"images", "labels"}})

-- One folder per class (torchvision ImageFolder order), PNG/JPEG decoded at load into
-- (channels, H, W) bytes; size = {H, W} (or one number for a square) resizes like PIL's
-- bilinear, channels = 1 converts to grey, 3 to RGB (ImageFolder's default). Or list = a CSV
-- with path_column and label columns (paths relative to root, else to the list's folder).
define("images", S.spec("data.images", {
    {"root", S.string},
    {"list", S.string},
    {"path_column", column_t, default = "path"},
    {"label", column_t, default = "label"},
    {"header", S.boolean, default = true},
    {"size", S.list(posint, {scalar = true, min = 1})},
    {"channels", {
        desc = "1 (grey) or 3 (RGB)",
        check = function(v) if v == 1 or v == 3 then return math.tointeger(v) end end,
        coerce = tonumber,
    }, default = 3},
    {"scale", S.number(), default = 1.0},
    {"normalize", normalize_t},
    {"augment", augment_t},
    -- stream = true: decoded a shard at a time while training (README, Data: streamed)
    {"stream", S.boolean, default = false},
    {"shard_size", posint, default = 64},
    {"shuffle_buffer", posint, default = 1024},
}, {positional = {"root"}}), {check = function(d)
    if not d.root and not d.list then
        S.fail("data.images", "give root (one folder per class) or list (a CSV of path, label)")
    end
    if d.root then d.root = resolve("data.images", "root", d.root) end
    if d.list then d.list = resolve("data.images", "list", d.list) end
    if d.size and #d.size > 2 then
        S.fail("data.images", "size must be {H, W} or one number, got " .. #d.size .. " values")
    end
    if d.size and #d.size == 1 then d.size = {d.size[1], d.size[1]} end
end})

-- NumPy arrays: x = "x.npy", y = "y.npy" (files), or npz = "train.npz" with x, y naming
-- its members ("x" or "x.npy"). Integer labels are class ids; float ones need a regression loss.
define("npy", S.spec("data.npy", {
    {"x", S.string, required = true},
    {"y", S.string},
    {"npz", S.string},
    {"scale", S.number(), default = 1.0},
    {"normalize", normalize_t},
    {"augment", augment_t},
}, {positional = {"x", "y"}}), {check = function(d)
    if d.npz then
        d.npz = resolve("data.npy", "npz", d.npz)
    else
        d.x = resolve("data.npy", "x", d.x)
        if d.y then d.y = resolve("data.npy", "y", d.y) end
    end
end})

-- A seeded, disjoint slice of the training set (the only split source for now).
define("split", S.spec("data.split", {
    {"from", S.enum{"train"}, default = "train"},
    {"fraction", S.number{min = 0, max = 1, min_open = true, max_open = true}, required = true},
}, {positional = {"fraction"}}), {})

data.resolve = resolve

return data
