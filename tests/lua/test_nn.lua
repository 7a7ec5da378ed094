-- tk.nn: layer constructors (defaults, shorthands, strict keys, user lines) and tk.lower
-- (node lists and PyTorch state_dict naming).
local T = require "tktest"
local tk = T.tk
local nn = tk.nn

-- name -> op of every node, in order, for compact expectations
local function names(nodes)
    local out = {}
    for i, n in ipairs(nodes) do out[i] = n.name .. ":" .. n.op .. (n.shared and "*" or "") end
    return out
end

T.test("linear defaults and positional shorthand", function()
    local a, b = nn.linear(512), nn.linear{out_features = 512}
    T.eq(a.out_features, 512)
    T.eq(a.bias, true)
    T.eq(a.in_features, nil)
    T.eq(a._kind, "nn.linear")
    T.eq(b.out_features, a.out_features)
    T.eq(nn.linear{512, bias = false}.bias, false)
    T.eq(nn.linear(512.0).out_features, 512, "integral float becomes an integer")
end)

T.test("dropout shorthand and range", function()
    T.eq(nn.dropout(0.2).p, 0.2)
    T.eq(nn.dropout().p, 0.5)
    T.eq(nn.dropout{p = 0}.p, 0.0)
    T.errors(function() nn.dropout(1.5) end, "nn.dropout: p must be a number in [0, 1], got 1.5")
end)

T.test("conv2d pairs, defaults and checks", function()
    local c = nn.conv2d{32, 3, padding = 1}
    T.eq(c.out_channels, 32)
    T.eq(c.kernel_size, {3, 3})
    T.eq(c.stride, {1, 1})
    T.eq(c.padding, {1, 1})
    T.eq(c.dilation, {1, 1})
    T.eq(c.groups, 1)
    T.eq(nn.conv2d{out_channels = 8, kernel_size = {3, 5}, padding = "same"}.padding, "same")
    T.errors(function() nn.conv2d{8, 3, stride = 2, padding = "same"} end, "padding = 'same' needs stride = 1")
    T.errors(function() nn.conv2d{10, 3, groups = 4} end, "out_channels (10) must be divisible by groups (4)")
    T.errors(function() nn.conv2d{8, {3, 3, 3}} end, "kernel_size must be a positive integer or a pair of them")
    T.errors(function() nn.conv2d{8} end, "nn.conv2d: kernel_size is required")
end)

T.test("pooling stride defaults to kernel_size", function()
    local p = nn.max_pool2d(2)
    T.eq(p.kernel_size, {2, 2})
    T.eq(p.stride, {2, 2})
    T.eq(p.ceil_mode, false)
    T.eq(nn.avg_pool2d{3, stride = 1, padding = 1}.count_include_pad, true)
    T.errors(function() nn.max_pool2d{2, padding = 2} end, "padding (2) must be at most half of kernel_size (2)")
    T.eq(nn.adaptive_avg_pool2d(1).output_size, {1, 1})
end)

T.test("norm, activation and shape layers", function()
    local bn = nn.batch_norm2d()
    T.eq({bn.eps, bn.momentum, bn.affine, bn.num_features}, {1e-5, 0.1, true, nil})
    T.eq(nn.layer_norm(64).normalized_shape, {64})
    T.eq(nn.layer_norm{normalized_shape = {4, 8}}.normalized_shape, {4, 8})
    T.eq(nn.leaky_relu().negative_slope, 0.01)
    T.eq(nn.elu().alpha, 1.0)
    T.eq(nn.gelu().approximate, "none")
    T.errors(function() nn.gelu("tanhh") end, "approximate must be one of 'none', 'tanh', got 'tanhh' (did you mean 'tanh'?)")
    T.eq({nn.softplus().beta, nn.softplus().threshold}, {1.0, 20.0})
    T.eq(nn.softmax().dim, 1)
    T.eq(nn.log_softmax(-1).dim, -1)
    T.errors(function() nn.softmax(0) end, "dim must be a non-zero integer (dim 0 is the batch)")
    local f = nn.flatten()
    T.eq({f.start_dim, f.end_dim}, {1, -1})
    T.errors(function() nn.flatten{3, 2} end, "start_dim (3) comes after end_dim (2)")
    T.eq(nn.reshape{1, 28, 28}.shape, {1, 28, 28})
    T.eq(nn.reshape{shape = {-1, 7}}.shape, {-1, 7})
    T.errors(function() nn.reshape{-1, -1} end, "only one entry of shape may be -1")
    T.errors(function() nn.reshape{0, 2} end, "shape[1] must be a positive integer or -1, got 0")
    for _, short in ipairs{"relu", "silu", "tanh", "sigmoid", "dropout2d"} do
        T.eq(nn[short]()._kind, "nn." .. short)
    end
end)

T.test("strict keys with suggestions", function()
    T.errors(function() nn.linear{out_feature = 3} end, "nn.linear: unknown key 'out_feature' (did you mean 'out_features'?)")
    T.errors(function() nn.linear{units = 3} end, "(did you mean 'out_features'?)")
    T.errors(function() nn.relu{inplace = true} end, "nn.relu: unknown key 'inplace' (valid keys: name)")
    T.eq({nn.linear{784, 512}.in_features, nn.linear{784, 512}.out_features}, {784, 512})
    T.errors(function() nn.linear(784, 512, true, 4) end, "nn.linear: unexpected positional argument #4 (4); "
        .. "accepted forms: nn.linear(out_features), nn.linear(in_features, out_features[, bias])")
    T.errors(function() nn.linear{512, out_features = 512} end, "out_features is given twice")
    T.errors(function() nn.linear{out_features = -3} end, "nn.linear: out_features must be a positive integer, got -3")
    T.errors(function() nn.linear{out_features = 2.5} end, "got 2.5")
    T.errors(function() nn.linear{out_features = 3, bias = "yes"} end, "bias must be true or false, got 'yes'")
    T.errors(function() nn.linear{out_features = 3, name = "a.b"} end, "name must be a non-empty string without '.'")
end)

T.test("errors and _where point at the user's line", function()
    local err = T.errors(function()
        T.run("local nn = tk.nn\nlocal m = nn.sequential {\n  nn.flatten(),\n  nn.linear(-3),\n}\n")
    end, "nn.linear: out_features must be a positive integer, got -3")
    T.ok(err:find("^mlp%.lua:4: "), "prefix mlp.lua:4: in " .. err)
    local m = T.run("local nn = tk.nn\n\nreturn nn.sequential {\n  nn.flatten(),\n  nn.linear(10),\n}\n")
    T.eq(m.layers[2]._where, "mlp.lua:5")
    T.eq(tk.lower(m)[2].where, "mlp.lua:5")
    T.errors(function() T.run("local m = tk.nn.sequential{ tk.nn.relu, tk.nn.linear(3) }") end,
        "item 1 is not a layer: got a function; did you forget to call it? write nn.relu()", "mlp.lua:1: ")
    T.errors(function() T.run("local m = tk.nn.sequential{ {tk.nn.linear(3)} }") end,
        "wrap a nested list of layers in nn.sequential{...}", "mlp.lua:1: ")
    T.errors(function() T.run("return tk.nn.sequential{}") end, "nn.sequential: needs at least one layer")
end)

T.test("_where strips the script folder", function()
    tk.script_dir = "/home/u/proj"
    local m = T.run("\nlocal m = tk.nn.relu()\nreturn m", "/home/u/proj/models/mlp.lua")
    T.eq(m._where, "models/mlp.lua:2")
    tk.script_dir = "/elsewhere"
    T.eq(T.run("local m = tk.nn.relu()\nreturn m", "/home/u/proj/mlp.lua")._where, "mlp.lua:1")
end)

T.test("lowering a sequential: PyTorch indices", function()
    -- torch: Sequential(Flatten(), Linear(..,512), ReLU(), Linear(512,10)) -> 1.weight, 3.weight
    local nodes = tk.lower(nn.sequential{nn.flatten(), nn.linear(512), nn.relu(), nn.linear(10)})
    T.eq(names(nodes), {"0:flatten", "1:linear", "2:relu", "3:linear"})
    T.eq(nodes[1].inputs, {0})
    T.eq(nodes[4].inputs, {3})
    T.eq(nodes[2].attrs, {out_features = 512, bias = true})
    T.eq(nodes[1].attrs, {start_dim = 1, end_dim = -1})
    T.eq(nodes[2].shared, nil)
end)

T.test("lowering nested and named containers", function()
    -- torch: Sequential(Linear, Sequential(Linear, ReLU, Linear)) -> 0.*, 1.0.*, 1.2.*
    local nodes = tk.lower(nn.sequential{nn.linear(4), nn.sequential{nn.linear(4), nn.relu(), nn.linear(4)}})
    T.eq(names(nodes), {"0:linear", "1.0:linear", "1.1:relu", "1.2:linear"})
    -- torch: Sequential(OrderedDict(features=Sequential(Conv2d, BatchNorm2d, ReLU), fc=Linear))
    nodes = tk.lower(nn.sequential{
        nn.sequential{nn.conv2d{8, 3}, nn.batch_norm2d(), nn.relu(), name = "features"},
        nn.flatten(),
        nn.linear{10, name = "fc"},
    })
    T.eq(names(nodes), {"features.0:conv2d", "features.1:batch_norm2d", "features.2:relu", "1:flatten", "fc:linear"})
    T.eq(nodes[1].attrs.kernel_size, {3, 3})
    T.eq(nodes[1].attrs.in_channels, nil)
end)

T.test("a bare layer as the model is named ''", function()
    local nodes = tk.lower(nn.linear{3, name = "ignored"})
    T.eq(names(nodes), {":linear"})
end)

T.test("lowering a residual: body then add(body, input)", function()
    local nodes = tk.lower(nn.sequential{
        nn.linear(8),
        nn.residual{nn.linear(8), nn.relu(), nn.linear(8)},
        nn.linear(2),
    })
    T.eq(names(nodes), {"0:linear", "1.0:linear", "1.1:relu", "1.2:linear", "1:add", "2:linear"})
    T.eq(nodes[5].inputs, {4, 1})
    T.eq(nodes[5].attrs, {})
    T.eq(nodes[6].inputs, {5})
end)

T.test("graph: +, concat, shared layer, use-order names", function()
    local model = T.run([[
local nn = tk.nn
local shared = nn.linear(16)
return nn.graph(function(x)
    local h = nn.linear{16, name = "stem"}(x)
    local a = shared(nn.relu()(h))
    local b = shared(h)
    local s = a + b
    local c = nn.concat{s, h, dim = 1}
    return nn.linear(10)(c + h)
end)
]])
    local nodes = tk.lower(model)
    T.eq(names(nodes), {"stem:linear", "1:relu", "2:linear", "2:linear*", "add:add",
                        "concat:concat", "add_1:add", "3:linear"})
    T.eq(nodes[1].inputs, {0})
    T.eq(nodes[3].inputs, {2})
    T.eq(nodes[4].inputs, {1})
    T.eq(nodes[5].inputs, {3, 4})
    T.eq(nodes[6].inputs, {5, 1})
    T.eq(nodes[6].attrs, {dim = 1})
    T.eq(nodes[7].inputs, {6, 1})
    T.eq(nodes[5].where, "mlp.lua:7")
    T.eq(nodes[6].where, "mlp.lua:8")
end)

T.test("graph nested in a sequential, and a residual inside a graph", function()
    local g = nn.graph(function(x) return nn.residual{nn.linear(4)}(x) + x end)
    local nodes = tk.lower(nn.sequential{nn.flatten(), g, nn.linear(2)})
    T.eq(names(nodes), {"0:flatten", "1.0.0:linear", "1.0:add", "1.add:add", "2:linear"})
end)

T.test("a container used twice shares its parameters", function()
    local block = nn.sequential{nn.linear(4), nn.relu()}
    local nodes = tk.lower(nn.sequential{block, block})
    T.eq(names(nodes), {"0.0:linear", "0.1:relu", "0.0:linear*", "0.1:relu*"})
    -- a graph whose function builds its layers afresh still shares on reuse
    local g = nn.graph(function(x) return nn.linear(4)(x) end)
    nodes = tk.lower(nn.sequential{g, g})
    T.eq(names(nodes), {"0.0:linear", "0.0:linear*"})
end)

T.test("graph errors point at the user's line", function()
    T.errors(function() T.run("local m = tk.nn.graph(function(x)\n  return x * 2\nend)\nreturn tk.lower(m)") end,
        "'*' is not supported on graph tensors", "mlp.lua:2: ")
    T.errors(function() T.run("local m = tk.nn.graph(function(x)\n  return x + 1\nend)\nreturn tk.lower(m)") end,
        "'+' adds two graph tensors, got 1", "mlp.lua:2: ")
    T.errors(function() T.run("local m = tk.nn.graph(function(x)\n  return x.shape\nend)\nreturn tk.lower(m)") end,
        "'shape' is not available", "mlp.lua:2: ")
    T.errors(function() T.run("local m = tk.nn.graph(function(x)\n  return 3\nend)\nreturn tk.lower(m)") end,
        "nn.graph: the function must return a tensor of this graph, got 3", "mlp.lua:1: ")
    T.errors(function() T.run("local m = tk.nn.graph(function(x)\n  local y = tk.nn.linear(3)(x)\n  return x\nend)\nreturn tk.lower(m)") end,
        "the output of linear '0' (mlp.lua:2) is never used", "mlp.lua:2: ")
    T.errors(function() T.run("\nlocal y = tk.nn.linear(3)(5)") end,
        "nn.linear: a layer can only be called on a tensor inside nn.graph", "mlp.lua:2: ")
    T.errors(function() T.run("\nlocal y = tk.nn.concat{1, 2}") end, "item 1 must be a graph tensor", "mlp.lua:2: ")
end)

T.test("a layer tail-called in a graph function reports the graph's line", function()
    T.errors(function() T.run("local m = tk.nn.graph(function(x)\n  return tk.nn.linear(3)(x, x)\nend)\nlocal n = tk.lower(m)") end,
        "nn.linear: a layer takes one tensor", "mlp.lua:1: ")
end)

T.test("duplicate names are rejected", function()
    T.errors(function() T.run("local nn = tk.nn\nreturn tk.lower(nn.sequential{\n  nn.linear{4, name = 'fc'},\n  nn.linear{4, name = 'fc'},\n})") end,
        "name 'fc' is already used by nn.linear (mlp.lua:3)", "mlp.lua:4: ")
end)

T.test("lowering is deterministic and repeatable", function()
    local m = nn.graph(function(x) return nn.linear(3)(nn.relu()(x)) end)
    T.eq(tk.lower(m), tk.lower(m))
end)

T.done()
