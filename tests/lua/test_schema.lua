-- tk.schema: suggestions, number formatting, value types and their --set coercion.
local T = require "tktest"
local S = require "tk.schema"

T.test("suggestions by edit distance and aliases", function()
    T.eq(S.suggest("learing_rate", {"lr", "momentum"}), "lr")
    T.eq(S.suggest("momentom", {"lr", "momentum"}), "momentum")
    T.eq(S.suggest("nestrov", {"nesterov", "lr"}), "nesterov")
    T.eq(S.suggest("ouptut", {"output", "input"}), "output", "transposition counts once")
    T.eq(S.suggest("BATCH_SIZE", {"batch_size"}), "batch_size")
    T.eq(S.suggest("xyz", {"lr", "momentum"}), nil)
    T.eq(S.suggest("betas", {"lr", "momentum"}), nil, "an alias only points at a valid key")
    T.eq(S.unknown_key("zzz", {"b", "a"}), "unknown key 'zzz' (valid keys: a, b)")
end)

T.test("numbers print as the shortest text that reads back", function()
    T.eq(S.fmtnum(0.1), "0.1")
    T.eq(S.fmtnum(1e-3), "0.001")
    T.eq(S.fmtnum(1.0), "1.0")
    T.eq(S.fmtnum(3), "3")
    T.eq(S.fmtnum(1 / 3), "0.3333333333333333")
    T.eq(tonumber(S.fmtnum(1 / 255)), 1 / 255)
end)

T.test("types check and normalise", function()
    local n = S.number{min = 0, max = 1, max_open = true}
    T.eq(n.desc, "a number in [0, 1)")
    T.eq(n.check(0), 0.0)
    T.eq(n.check(1), nil)
    T.eq(n.check(math.huge), nil)
    T.eq(S.integer{min = 0}.desc, "an integer >= 0")
    T.eq(S.integer{min = 1}.check(3.0), 3)
    T.eq(S.pair(S.integer{min = 1}).check(3), {3, 3})
    T.eq(S.pair(S.integer{min = 1}).check({2, 3}), {2, 3})
    T.eq(S.pair(S.integer{min = 1}).check({2, 3, 4}), nil)
    T.eq(S.list(S.string, {scalar = true}).check("a"), {"a"})
    local _, tail = S.list(S.integer{}).check({1, "x"})
    T.eq(tail, "[2] must be an integer, got 'x'")
end)

T.test("--set strings are coerced by type", function()
    T.eq(S.number().coerce("3e-4"), 3e-4)
    T.eq(S.boolean.coerce("true"), true)
    T.eq(S.boolean.coerce("yes"), nil)
    T.eq(S.list(S.number()).coerce("0.9, 0.999"), {0.9, 0.999})
    T.eq(S.list(S.number()).coerce("0.9,x"), nil)
    T.eq(S.pair(S.integer{}).coerce("3"), 3)
    T.eq(S.pair(S.integer{}).coerce("3,5"), {3, 5})
    local u = S.union({S.integer{min = 1}, S.string}, "a column")
    T.eq(u.coerce("4"), 4)
    T.eq(u.coerce("species"), "species")
end)

T.test("records: strict keys, required, defaults, positional", function()
    local spec = S.spec("thing", {
        {"size", S.integer{min = 1}, required = true},
        {"scale", S.number(), default = 2},
        {"shape", S.list(S.integer{}), default = {1, 2}},
    }, {positional = {"size"}})
    local a = S.validate(spec, S.args(spec, 4))
    T.eq(a, {size = 4, scale = 2.0, shape = {1, 2}}, "a number default is stored as a float")
    a.shape[1] = 9
    T.eq(S.validate(spec, {size = 1}).shape, {1, 2}, "defaults are copied")
    T.errors(function() S.validate(spec, {}) end, "thing: size is required")
    T.errors(function() S.validate(spec, {size = 1, sise = 2}) end, "thing: unknown key 'sise' (did you mean 'size'?)")
    T.errors(function() S.args(spec, {1, 2}) end, "thing: unexpected positional argument #2 (2); accepted forms: thing(size)")
end)

T.done()
