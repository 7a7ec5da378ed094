-- Layer constructors (tk.nn) and tk.lower, which flattens a model into the node list that
-- lang/spec.c turns into the C graph.
--
-- Naming follows PyTorch state_dict keys. Sequential children are numbered from 0, layers
-- without parameters included; `name = "fc1"` replaces the number; nesting joins with dots.
-- Inside nn.graph(fn), layers are numbered by their order of first use in fn (a named layer
-- still takes its number, so later numbers do not move when a name is added). A layer table
-- used twice shares its parameters: the second node repeats the first name with shared=true.
-- Graph-level `+` and nn.concat get FX-style names: "add", "add_1", "concat", ...
local S = require "tk.schema"
S.internal(debug.getinfo(1, "S").source)

local nn = {}
local specs = {}         -- leaf kind -> spec, for copying attrs at lowering
local constructors = {}  -- constructor function -> "nn.relu", to spot a forgotten call

local Layer = {}         -- metatable of every layer table: calling it traces a graph node
local Tensor = {__name = "tk.tensor"}

local function is_layer(v) return type(v) == "table" and getmetatable(v) == Layer end
local function is_tensor(v) return type(v) == "table" and getmetatable(v) == Tensor end
nn.is_layer = is_layer

local function join(prefix, name) return prefix == "" and name or prefix .. "." .. name end

-- ---------------------------------------------------------------- types

local posint = S.integer{min = 1}
local nonneg = S.integer{min = 0}
local number = S.number()
local pos_number = S.number{min = 0, min_open = true}
local probability = S.number{min = 0, max = 1}

local name_t = {
    desc = "a non-empty string without '.'",
    check = function(v)
        if type(v) == "string" and v ~= "" and not v:find(".", 1, true) then return v end
    end,
}

-- Dimensions count the batch as dim 0 (as in PyTorch), and a layer may not touch it.
local dim_t = {
    desc = "a non-zero integer (dim 0 is the batch)",
    check = function(v)
        local i = type(v) == "number" and math.tointeger(v)
        if i and i ~= 0 then return i end
    end,
}

local padding_t = S.union({S.pair(nonneg), S.enum{"same", "valid"}},
    "a non-negative integer, a pair of them, 'same' or 'valid'")

local shape_t = S.list(S.integer{}, {min = 1})

-- ---------------------------------------------------------------- leaf layers

local function describe_item(v)
    if type(v) == "function" and constructors[v] then
        return "a function; did you forget to call it? write " .. constructors[v] .. "()"
    end
    return S.repr(v)
end

-- Defines nn.<short>: options are checked by `fields`, then by o.check(layer, fail).
local function leaf(short, fields, o)
    o = o or {}
    local kind = "nn." .. short
    fields[#fields + 1] = {"name", name_t}
    local spec = S.spec(kind, fields, o)
    specs[kind] = spec
    local function ctor(...)
        local layer = S.validate(spec, S.args(spec, ...))
        if o.check then o.check(layer, function(msg) S.fail(kind, msg) end) end
        layer._kind = kind
        layer._where = S.where()
        return setmetatable(layer, Layer)
    end
    nn[short] = ctor
    constructors[ctor] = kind
    S.public[ctor] = spec
end

local function no_options(short) leaf(short, {}) end

leaf("linear", {
    {"out_features", posint, required = true},
    {"in_features", posint},
    {"bias", S.boolean, default = true},
}, {forms = {{"out_features"}, {"in_features", "out_features", "bias", min = 2}}})

leaf("conv2d", {
    {"out_channels", posint, required = true},
    {"kernel_size", S.pair(posint), required = true},
    {"stride", S.pair(posint), default = {1, 1}},
    {"padding", padding_t, default = {0, 0}},
    {"dilation", S.pair(posint), default = {1, 1}},
    {"groups", posint, default = 1},
    {"bias", S.boolean, default = true},
    {"in_channels", posint},
}, {
    forms = {{"out_channels", "kernel_size"}, {"in_channels", "out_channels", "kernel_size", "stride",
        "padding", "dilation", "groups", "bias", min = 3}},
    check = function(l, fail)
        if l.padding == "same" and (l.stride[1] ~= 1 or l.stride[2] ~= 1) then
            fail("padding = 'same' needs stride = 1 (as in PyTorch)")
        end
        if l.out_channels % l.groups ~= 0 then
            fail(string.format("out_channels (%d) must be divisible by groups (%d)", l.out_channels, l.groups))
        end
        if l.in_channels and l.in_channels % l.groups ~= 0 then
            fail(string.format("in_channels (%d) must be divisible by groups (%d)", l.in_channels, l.groups))
        end
    end,
})

local function pool_check(l, fail)
    for i = 1, 2 do
        if l.padding[i] > l.kernel_size[i] // 2 then
            fail(string.format("padding (%d) must be at most half of kernel_size (%d)",
                l.padding[i], l.kernel_size[i]))
        end
    end
end

leaf("max_pool2d", {
    {"kernel_size", S.pair(posint), required = true},
    {"stride", S.pair(posint), default = function(l) return {l.kernel_size[1], l.kernel_size[2]} end},
    {"padding", S.pair(nonneg), default = {0, 0}},
    {"ceil_mode", S.boolean, default = false},
}, {forms = {{"kernel_size", "stride", "padding", min = 1}}, check = pool_check})

leaf("avg_pool2d", {
    {"kernel_size", S.pair(posint), required = true},
    {"stride", S.pair(posint), default = function(l) return {l.kernel_size[1], l.kernel_size[2]} end},
    {"padding", S.pair(nonneg), default = {0, 0}},
    {"ceil_mode", S.boolean, default = false},
    {"count_include_pad", S.boolean, default = true},
}, {forms = {{"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", min = 1}},
    check = pool_check})

leaf("adaptive_avg_pool2d", {
    {"output_size", S.pair(posint), required = true},
}, {positional = {"output_size"}})

for _, short in ipairs{"batch_norm1d", "batch_norm2d"} do
    leaf(short, {
        {"num_features", posint},
        {"eps", pos_number, default = 1e-5},
        {"momentum", probability, default = 0.1},
        {"affine", S.boolean, default = true},
    }, {forms = {{"num_features", "eps", "momentum", "affine", min = 1}}})
end

leaf("layer_norm", {
    {"normalized_shape", S.list(posint, {scalar = true, min = 1})},
    {"eps", pos_number, default = 1e-5},
    {"elementwise_affine", S.boolean, default = true},
}, {forms = {{"normalized_shape", "eps", "elementwise_affine", min = 1}}})

leaf("dropout", {{"p", probability, default = 0.5}}, {positional = {"p"}})
leaf("dropout2d", {{"p", probability, default = 0.5}}, {positional = {"p"}})
leaf("leaky_relu", {{"negative_slope", number, default = 0.01}}, {positional = {"negative_slope"}})
leaf("elu", {{"alpha", number, default = 1.0}}, {positional = {"alpha"}})
leaf("gelu", {{"approximate", S.enum{"none", "tanh"}, default = "none"}}, {positional = {"approximate"}})
leaf("softplus", {
    {"beta", pos_number, default = 1.0},
    {"threshold", number, default = 20.0},
}, {positional = {"beta", "threshold"}})
leaf("hardtanh", {{"min_val", number, default = -1.0}, {"max_val", number, default = 1.0}},
    {positional = {"min_val", "max_val"}})
leaf("softmax", {{"dim", dim_t, default = 1}}, {positional = {"dim"}})
leaf("log_softmax", {{"dim", dim_t, default = 1}}, {positional = {"dim"}})
for _, short in ipairs{"relu", "silu", "tanh", "sigmoid"} do no_options(short) end

leaf("flatten", {
    {"start_dim", dim_t, default = 1},
    {"end_dim", dim_t, default = -1},
}, {
    positional = {"start_dim", "end_dim"},
    check = function(l, fail)
        if (l.start_dim > 0) == (l.end_dim > 0) and l.start_dim > l.end_dim then
            fail(string.format("start_dim (%d) comes after end_dim (%d)", l.start_dim, l.end_dim))
        end
    end,
})

-- The shape excludes the batch dimension; one entry may be -1 (inferred).
-- nn.reshape(1, 28, 28) and nn.reshape{1, 28, 28} are short for nn.reshape{shape = {1, 28, 28}}.
leaf("reshape", {
    {"shape", shape_t, required = true},
}, {
    forms = {{"shape", variadic = true}},
    check = function(l, fail)
        local inferred = 0
        for i, d in ipairs(l.shape) do
            if d == -1 then inferred = inferred + 1
            elseif d < 1 then fail(string.format("shape[%d] must be a positive integer or -1, got %d", i, d)) end
        end
        if inferred > 1 then fail("only one entry of shape may be -1") end
    end,
})

-- ---------------------------------------------------------------- containers

local function container(short)
    local kind = "nn." .. short
    -- PyTorch's nn.Sequential(a, b, c) form: the layers as arguments.
    local function ctor(a, ...)
        if is_layer(a) or select("#", ...) > 0 then a = {a, ...} end
        if type(a) ~= "table" or getmetatable(a) or rawget(a, "_kind") then
            S.fail(kind, "expects a list of layers, e.g. " .. kind .. "{nn.linear(10), nn.relu()}, got "
                .. describe_item(a))
        end
        local n = 0
        for _, k in ipairs(S.sorted_keys(a)) do
            if math.type(k) == "integer" then n = n + 1
            elseif k ~= "name" then S.fail(kind, S.unknown_key(k, {"name"})) end
        end
        if n ~= #a then S.fail(kind, "the layer list has a hole (a nil entry)") end
        if n == 0 then S.fail(kind, "needs at least one layer") end
        local layers = {}
        for i, v in ipairs(a) do
            if not is_layer(v) then
                local hint = ""
                if type(v) == "table" and not rawget(v, "_kind") and not is_tensor(v) then
                    hint = "; wrap a nested list of layers in nn.sequential{...}"
                end
                S.fail(kind, string.format("item %d is not a layer: got %s%s", i, describe_item(v), hint))
            end
            layers[i] = v
        end
        local name = a.name
        if name ~= nil and name_t.check(name) == nil then
            S.fail(kind, "name must be " .. name_t.desc .. ", got " .. S.repr(name))
        end
        return setmetatable({_kind = kind, _where = S.where(), name = name, layers = layers}, Layer)
    end
    nn[short] = ctor
    constructors[ctor] = kind
end

container("sequential")
container("residual")   -- x + body(x)

local graph_spec = S.spec("nn.graph", {{"fn", S.func, required = true}, {"name", name_t}},
    {positional = {"fn"}})

-- nn.graph(function(x) ... return y end): fn runs once per lowering, on symbolic tensors.
function nn.graph(...)
    local g = S.validate(graph_spec, S.args(graph_spec, ...))
    g._kind = "nn.graph"
    g._where = S.where()
    return setmetatable(g, Layer)
end
constructors[nn.graph] = "nn.graph"
S.public[nn.graph] = graph_spec

-- ---------------------------------------------------------------- lowering

local function emit(L, node)
    L.nodes[#L.nodes + 1] = node
    return #L.nodes
end

-- Two distinct layers under one full name would collide in the state_dict.
local function claim(L, name, layer)
    local prev = L.used[name]
    if prev then
        S.fail(layer._kind, string.format("name '%s' is already used by %s (%s)", name, prev._kind,
            prev._where or "?"), layer._where)
    end
    L.used[name] = layer
end

local lower_layer

local function lower_graph(L, g, x, name, shared)
    local trace = {L = L, graph = g, prefix = name, next_index = 0, shared = shared, ops = {}, open = true}
    local out = g.fn(setmetatable({_trace = trace, _node = x}, Tensor))
    trace.open = false
    if not is_tensor(out) or out._trace ~= trace then
        S.fail("nn.graph", "the function must return a tensor of this graph, got " .. S.repr(out), g._where)
    end
    return out._node
end

-- Lowers `layer` applied to node x under the full name `name`; returns the output node.
-- `shared` is set while re-lowering a container that was already lowered once: layers it
-- creates afresh (inside a graph function) then share the first lowering's parameters.
function lower_layer(L, layer, x, name, shared)
    if L.seen[layer] then
        name, shared = L.seen[layer], true
    else
        L.seen[layer] = name
        if not shared then claim(L, name, layer) end
    end
    local kind = layer._kind
    if kind == "nn.sequential" or kind == "nn.residual" then
        local y = x
        for i, child in ipairs(layer.layers) do
            y = lower_layer(L, child, y, join(name, child.name or tostring(i - 1)), shared)
        end
        if kind == "nn.sequential" then return y end
        return emit(L, {op = "add", inputs = {y, x}, attrs = {}, name = name, where = layer._where})
    elseif kind == "nn.graph" then
        return lower_graph(L, layer, x, name, shared)
    end
    local attrs = {}
    for _, f in ipairs(specs[kind].fields) do
        if f.name ~= "name" then attrs[f.name] = S.copy(layer[f.name]) end
    end
    return emit(L, {op = kind:sub(4), inputs = {x}, attrs = attrs, name = name,
                    where = layer._where, shared = shared or nil})
end

local function open_trace(t, ctx)
    if not t._trace.open then
        S.fail(ctx, "this tensor belongs to a graph that has finished tracing")
    end
    return t._trace
end

-- FX-style names for functional nodes: "add", "add_1", ...
local function functional_name(trace, base)
    local n = trace.ops[base] or 0
    trace.ops[base] = n + 1
    return join(trace.prefix, n == 0 and base or base .. "_" .. n)
end

function Layer.__call(layer, x, ...)
    -- `return layer(h)` is a tail call that removes the graph function's frame; errors then
    -- name the graph's line (or the layer's) instead of a line outside the user's code.
    local where
    if debug.getinfo(1, "t").istailcall then
        where = is_tensor(x) and x._trace.graph._where or layer._where
    end
    if not is_tensor(x) then
        S.fail(layer._kind, "a layer can only be called on a tensor inside nn.graph(function(x) ... end), got "
            .. S.repr(x), where)
    end
    if select("#", ...) > 0 then S.fail(layer._kind, "a layer takes one tensor", where) end
    local trace = open_trace(x, layer._kind)
    local name
    if not trace.L.seen[layer] then
        name = join(trace.prefix, layer.name or tostring(trace.next_index))
        trace.next_index = trace.next_index + 1
    end
    return setmetatable({_trace = trace, _node = lower_layer(trace.L, layer, x._node, name, trace.shared)},
        Tensor)
end

function Tensor.__add(a, b)
    if not is_tensor(a) or not is_tensor(b) then
        S.fail("nn.graph", "'+' adds two graph tensors, got " .. S.repr(is_tensor(a) and b or a))
    end
    local trace = open_trace(a, "nn.graph")
    if open_trace(b, "nn.graph") ~= trace then S.fail("nn.graph", "'+' mixes tensors of two graphs") end
    local node = emit(trace.L, {op = "add", inputs = {a._node, b._node}, attrs = {},
                                name = functional_name(trace, "add"), where = S.where()})
    return setmetatable({_trace = trace, _node = node}, Tensor)
end

for mm, op in pairs{__sub = "-", __mul = "*", __div = "/", __unm = "unary -", __pow = "^",
                    __mod = "%", __idiv = "//", __concat = ".."} do
    Tensor[mm] = function()
        S.fail("nn.graph", string.format("'%s' is not supported on graph tensors (use layers, + and nn.concat)", op))
    end
end

Tensor.__index = function(_, k)
    S.fail("nn.graph", string.format("graph tensors are symbolic while tracing; '%s' is not available "
        .. "(use layers, + and nn.concat)", tostring(k)))
end

Tensor.__tostring = function(t) return "graph tensor (node " .. t._node .. ")" end

-- nn.concat{a, b, ..., dim = 1, name = nil}: only inside a graph function.
function nn.concat(a, ...)
    if select("#", ...) > 0 then
        S.fail("nn.concat", string.format("unexpected argument #2 (%s); write nn.concat{a, b, dim = 1}",
            S.repr((...))))
    end
    if type(a) ~= "table" or getmetatable(a) then
        S.fail("nn.concat", "expects {tensor, tensor, ..., dim = 1}, got " .. S.repr(a))
    end
    local n = 0
    for _, k in ipairs(S.sorted_keys(a)) do
        if math.type(k) == "integer" then n = n + 1
        elseif k ~= "dim" and k ~= "name" then S.fail("nn.concat", S.unknown_key(k, {"dim", "name"})) end
    end
    if n == 0 or n ~= #a then S.fail("nn.concat", "expects a list of graph tensors inside nn.graph") end
    local trace
    local inputs = {}
    for i, t in ipairs(a) do
        if not is_tensor(t) then
            S.fail("nn.concat", string.format("item %d must be a graph tensor (nn.concat works inside "
                .. "nn.graph), got %s", i, S.repr(t)))
        end
        local tr = open_trace(t, "nn.concat")
        if trace and tr ~= trace then S.fail("nn.concat", "mixes tensors of two graphs") end
        trace = tr
        inputs[i] = t._node
    end
    local dim = a.dim == nil and 1 or dim_t.check(a.dim)
    if not dim then S.fail("nn.concat", "dim must be " .. dim_t.desc .. ", got " .. S.repr(a.dim)) end
    if a.name ~= nil and name_t.check(a.name) == nil then
        S.fail("nn.concat", "name must be " .. name_t.desc .. ", got " .. S.repr(a.name))
    end
    local name = a.name and join(trace.prefix, a.name) or functional_name(trace, "concat")
    local node = emit(trace.L, {op = "concat", inputs = inputs, attrs = {dim = dim}, name = name,
                                where = S.where()})
    return setmetatable({_trace = trace, _node = node}, Tensor)
end

-- tk.lower(model) -> list of {op, inputs, attrs, name, where, shared}; input 0 is the model
-- input, other inputs are 1-based indices of earlier entries, the last entry is the output.
-- The model's own `name` is ignored: a bare layer has parameters "weight", "bias".
function nn.lower(model)
    if not is_layer(model) then
        local hint = (type(model) == "table" and not rawget(model, "_kind") and not is_tensor(model))
            and " (wrap a list of layers in nn.sequential{...})" or ""
        S.fail("model", "must be an nn layer, got " .. describe_item(model) .. hint)
    end
    local L = {nodes = {}, seen = {}, used = {}}
    local out = lower_layer(L, model, 0, "", false)
    if #L.nodes == 0 then S.fail(model._kind, "the model has no layers", model._where) end
    local used = {[out] = true}
    for _, node in ipairs(L.nodes) do
        for _, i in ipairs(node.inputs) do used[i] = true end
    end
    for i, node in ipairs(L.nodes) do
        if not used[i] then
            S.fail(model._kind, string.format("the output of %s '%s' (%s) is never used", node.op,
                node.name, node.where or "?"), node.where)
        end
    end
    return L.nodes
end

return nn
