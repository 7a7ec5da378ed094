-- A small residual CNN on FashionMNIST: batch norm, two residual blocks (x + f(x)), global
-- average pooling. The equivalent PyTorch module is in tests/gen_fixtures_models.py.
local nn, data = tk.nn, tk.data
local norm = { mean = 0.2860, std = 0.3530 }

local function conv_bn(channels)
  return nn.conv2d { out_channels = channels, kernel_size = 3, padding = 1, bias = false },
         nn.batch_norm2d {}
end

local function block(channels)
  local c1, b1 = conv_bn(channels)
  local c2, b2 = conv_bn(channels)
  return nn.residual { c1, b1, nn.relu(), c2, b2 }
end

local stem_conv, stem_bn = conv_bn(32)
local mid_conv, mid_bn = conv_bn(64)

return tk.pipeline {
  name = "fashion-mnist-resnet",
  seed = 6666,
  data = {
    train = data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                       labels = "fashion-mnist/train-labels-idx1-ubyte.gz",
                       scale = 1/255, normalize = norm },
    valid = data.split { from = "train", fraction = 0.1 },
    test  = data.idx { images = "fashion-mnist/t10k-images-idx3-ubyte.gz",
                       labels = "fashion-mnist/t10k-labels-idx1-ubyte.gz",
                       scale = 1/255, normalize = norm },
    batch_size = 64, shuffle = true,
  },
  model = nn.sequential {
    stem_conv, stem_bn, nn.relu(),                 -- 0, 1, 2
    block(32), nn.relu(),                          -- 3, 4
    nn.max_pool2d(2),                              -- 5
    mid_conv, mid_bn, nn.relu(),                   -- 6, 7, 8
    block(64), nn.relu(),                          -- 9, 10
    nn.adaptive_avg_pool2d(1), nn.flatten(),       -- 11, 12
    nn.linear(10),                                 -- 13
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 5e-4 },
  schedule = tk.sched.onecycle { max_lr = 0.1 },
  epochs = 5,
}
