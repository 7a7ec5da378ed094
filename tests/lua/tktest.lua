-- Minimal test harness for the stdlib tests: named cases, deep equality, expected errors,
-- running script text as a user chunk, and the final "N passed, M failed" line + exit code.
local T = {passed = 0, failed = 0}

local tk = require "tk"
T.tk = tk

local function show(v, depth)
    depth = depth or 0
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) ~= "table" then return tostring(v) end
    if depth > 4 then return "{...}" end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k], depth + 1) end
    return "{" .. table.concat(parts, ", ") .. "}"
end
T.show = show

local function equal(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) ~= "table" then
        return a == b and math.type(a) == math.type(b)
    end
    for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end

function T.test(name, fn)
    tk.script_dir = nil
    local ok, err = xpcall(fn, debug.traceback)
    if ok then
        T.passed = T.passed + 1
    else
        T.failed = T.failed + 1
        print("FAIL " .. name .. "\n  " .. tostring(err):gsub("\n", "\n  "))
    end
end

-- Deep equality, also of number subtypes (an integer attr must not arrive as a float).
function T.eq(got, want, what)
    if not equal(got, want) then
        error(string.format("%s: expected %s, got %s", what or "value", show(want), show(got)), 2)
    end
end

function T.ok(cond, what)
    if not cond then error((what or "condition") .. " is false", 2) end
end

-- Calls fn and expects an error whose message contains `text` (plain) and, if given,
-- starts with `prefix`.
function T.errors(fn, text, prefix)
    local ok, err = pcall(fn)
    if ok then error("expected an error containing: " .. text, 2) end
    err = tostring(err)
    if not err:find(text, 1, true) then
        error(string.format("error %q does not contain %q", err, text), 2)
    end
    if prefix and err:sub(1, #prefix) ~= prefix then
        error(string.format("error %q does not start with %q", err, prefix), 2)
    end
    return err
end

-- Runs script text as the user's chunk named `name` (as the host does), with `tk` global.
function T.run(src, name)
    local env = setmetatable({tk = tk}, {__index = _G})
    local chunk = assert(load(src, "=" .. (name or "mlp.lua"), "t", env))
    return chunk()
end

-- Writes script text to dir/name and runs it from the file, so the stdlib can read its text.
function T.run_file(src, dir, name)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w"))
    f:write(src)
    f:close()
    local env = setmetatable({tk = tk}, {__index = _G})
    local chunk = assert(loadfile(path, "t", env))
    return chunk()
end

-- A fresh temporary folder.
function T.tmpdir()
    local name = os.tmpname()
    os.remove(name)
    assert(os.execute("mkdir -p '" .. name .. "'"))
    return name
end

function T.touch(path)
    assert(os.execute("mkdir -p '" .. path:match("^(.*)/") .. "'"))
    local f = assert(io.open(path, "w"))
    f:write("x\n")
    f:close()
end

function T.done()
    print(string.format("%d passed, %d failed", T.passed, T.failed))
    if T.failed > 0 then os.exit(1) end
end

return T
