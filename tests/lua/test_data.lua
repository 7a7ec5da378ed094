-- tk.data: CSV/IDX/split options and path resolution (script folder, $TK_DATA,
-- /usr/share/datasets) with the error that names every place looked.
local T = require "tktest"
local tk = T.tk
local data = tk.data

local dir = T.tmpdir()
T.touch(dir .. "/script/iris.csv")
T.touch(dir .. "/script/labels.csv")
T.touch(dir .. "/envdata/mnist/train-images.gz")
T.touch(dir .. "/envdata/mnist/train-labels.gz")

-- $TK_DATA cannot be set from pure Lua, so tests swap os.getenv (data.lua reads it per call).
local real_getenv = os.getenv
local function with_env(vars, fn)
    os.getenv = function(k) if vars[k] ~= nil then return vars[k] or nil end return real_getenv(k) end
    local ok, err = pcall(fn)
    os.getenv = real_getenv
    if not ok then error(err, 0) end
end

T.test("csv defaults and path relative to the script folder", function()
    tk.script_dir = dir .. "/script"
    local d = data.csv "iris.csv"
    T.eq(d._kind, "data.csv")
    T.eq(d.path, dir .. "/script/iris.csv")
    T.eq({d.delimiter, d.skip_rows, d.header, d.regression}, {",", 0, false, false})
    T.eq(d.label, nil)
    T.eq(data.csv{"iris.csv", label = 5, features = {1, 2, 3, 4}, skip_rows = 1}.features, {1, 2, 3, 4})
end)

T.test("csv options are checked", function()
    tk.script_dir = dir .. "/script"
    T.errors(function() data.csv{"iris.csv", label = "species"} end,
        "data.csv: label 'species' is a column name, which needs header = true")
    T.eq(data.csv{"iris.csv", header = true, label = "species"}.label, "species")
    T.eq(data.csv{"iris.csv", label = {5, 6}}.label, {5, 6})
    T.errors(function() data.csv{"iris.csv", label = 0} end, "label must be a column name or number")
    T.errors(function() data.csv{"iris.csv", label = 2, features = {1, 2}} end, "column 2 is both a label and a feature")
    T.errors(function() data.csv{"iris.csv", delimiter = ";;"} end, "delimiter must be a one-character string")
    T.errors(function() data.csv{"iris.csv", normalize = "standart"} end, "normalize must be 'standard', 'minmax' or {mean = ..., std = ...}")
    T.errors(function() data.csv{"iris.csv", normalise = "standard"} end, "unknown key 'normalise' (did you mean 'normalize'?)")
    local n = data.csv{"iris.csv", normalize = {mean = 0.5, std = {1, 2}}}.normalize
    T.eq(n, {mean = {0.5}, std = {1.0, 2.0}})
    T.errors(function() data.csv{"iris.csv", normalize = {mean = 0, std = 0}} end, "normalize: std must be a number > 0 or a list of values, each a number > 0, got 0")
    T.errors(function() data.csv{"iris.csv", normalize = {mean = {1, 2, 3}, std = {1, 2}}} end, "mean has 3 values but std has 2")
    local l = data.csv{"labels.csv"}
    T.eq(data.csv{"iris.csv", label = l}.label, l)
end)

T.test("idx resolves both paths via $TK_DATA", function()
    tk.script_dir = dir .. "/script"
    with_env({TK_DATA = dir .. "/envdata"}, function()
        local d = data.idx{images = "mnist/train-images.gz", labels = "mnist/train-labels.gz", scale = 1 / 255}
        T.eq(d.images, dir .. "/envdata/mnist/train-images.gz")
        T.eq(d.labels, dir .. "/envdata/mnist/train-labels.gz")
        T.eq(d.scale, 1 / 255)
    end)
end)

T.test("a missing file names every place looked, at the user's line", function()
    tk.script_dir = dir .. "/script"
    with_env({TK_DATA = false}, function()
        local err = T.errors(function()
            T.run("local d = 1\nlocal x = tk.data.csv{ 'nope.csv' }\n")
        end, "data.csv: path file 'nope.csv' not found; looked in ", "mlp.lua:2: ")
        T.ok(err:find(dir .. "/script/nope.csv (script folder)", 1, true), err)
        T.ok(err:find("$TK_DATA (not set)", 1, true), err)
        T.ok(err:find("/usr/share/datasets/nope.csv", 1, true), err)
    end)
    with_env({TK_DATA = dir .. "/envdata"}, function()
        T.errors(function() data.idx{images = "nope.gz", labels = "mnist/train-labels.gz"} end,
            dir .. "/envdata/nope.gz ($TK_DATA)")
    end)
    T.errors(function() data.csv(dir .. "/absent.csv") end, "path file '" .. dir .. "/absent.csv' not found")
end)

T.test("absolute paths are kept", function()
    T.eq(data.csv(dir .. "/script/iris.csv").path, dir .. "/script/iris.csv")
end)

T.test("/usr/share/datasets is the last place looked", function()
    local f = io.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", "rb")
    if not f then return end  -- dataset-fashion-mnist not installed here
    f:close()
    tk.script_dir = dir .. "/script"
    with_env({TK_DATA = false}, function()
        local d = data.idx{images = "fashion-mnist/train-images-idx3-ubyte.gz",
                           labels = "fashion-mnist/train-labels-idx1-ubyte.gz"}
        T.eq(d.labels, "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz")
    end)
end)

T.test("split", function()
    local s = data.split(0.1)
    T.eq({s._kind, s.from, s.fraction}, {"data.split", "train", 0.1})
    T.errors(function() data.split{fraction = 1} end, "fraction must be a number in (0, 1), got 1")
    T.errors(function() data.split{from = "test", fraction = 0.2} end, "from must be one of 'train', got 'test'")
    T.errors(function() data.split{} end, "data.split: fraction is required")
end)

os.execute("rm -rf '" .. dir .. "'")
T.done()
