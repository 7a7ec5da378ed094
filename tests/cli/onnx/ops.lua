-- ONNX export test (tests/cli/export.sh): every other op in one traced graph. Convolutions
-- with 'same' padding and dilation, groups, stride and no bias; pooling in ceil mode with
-- partial windows (max, and average with and without count_include_pad); adaptive pooling
-- that tiles and that does not; batch norm 1d/2d (with and without affine); layer norm over
-- two dims; linear over a 3-d input and without bias; reshape and flatten to 3-d; add and
-- concat; every activation, softplus with a threshold that matters; log_softmax last.
local nn = tk.nn
return tk.pipeline {
  seed = 4,
  data = {
    train = tk.data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                          labels = "fashion-mnist/train-labels-idx1-ubyte.gz",
                          scale = 1/255, normalize = { mean = 0.2860, std = 0.3530 } },
    batch_size = 32, shuffle = true,
  },
  model = nn.graph(function(x)
    local c = nn.elu { alpha = 0.7 }(nn.conv2d { out_channels = 4, kernel_size = 3, padding = "same",
                                      dilation = 2 }(x))                         -- (4, 28, 28)
    local g = nn.leaky_relu { negative_slope = 0.1 }(nn.conv2d { out_channels = 6, kernel_size = { 3, 2 },
                                             stride = 2, padding = 1, groups = 2,
                                             bias = false }(c))                  -- (6, 14, 15)
    local m = nn.max_pool2d { kernel_size = 3, stride = 2, padding = 1, ceil_mode = true }(g)
    local a = nn.avg_pool2d { kernel_size = 3, stride = 2, padding = 1, ceil_mode = true }(g)
    local a2 = nn.avg_pool2d { kernel_size = 2, stride = 2, ceil_mode = true,
                               count_include_pad = false }(g)                    -- (6, 7, 8)
    local h = nn.concat { m, a, dim = 1 }                                        -- (12, 8, 8)
    h = nn.dropout2d { p = 0.2 }(nn.batch_norm2d { affine = false }(h))
    local p1 = nn.adaptive_avg_pool2d { output_size = 4 }(h)                                      -- (12, 4, 4)
    local p2 = nn.adaptive_avg_pool2d { output_size = 3 }(a2)                                     -- (6, 3, 3)
    local r = nn.reshape { shape = { 12, 16 } }(p1) + nn.flatten { start_dim = 2 }(p1)       -- (12, 16)
    r = nn.layer_norm { normalized_shape = { 12, 16 } }(r)
    r = nn.batch_norm1d {}(nn.linear { out_features = 16 }(r))
    r = nn.gelu { approximate = "tanh" }(r)
    local v = nn.concat { nn.flatten()(r), nn.flatten()(p1), nn.flatten()(p2), dim = 1 }
    v = nn.gelu()(nn.linear { out_features = 32, bias = false }(v))
    local all = nn.concat { nn.softplus { beta = 2, threshold = 0.5 }(v), nn.hardtanh { min_val = -0.5, max_val = 0.8 }(v), nn.silu()(v),
                            nn.tanh()(v), nn.sigmoid()(v), nn.softmax()(v), nn.relu()(v),
                            nn.softplus()(v), dim = 1 }
    all = nn.dropout { p = 0.1 }(nn.layer_norm()(all))
    return nn.log_softmax()(nn.linear { out_features = 10 }(all))
  end),
  loss = tk.loss.nll {},
  optimizer = tk.optim.adam { lr = 1e-3 },
  epochs = 1,
}
