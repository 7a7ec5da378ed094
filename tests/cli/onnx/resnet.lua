-- ONNX export test (tests/cli/export.sh): a small examples/fashion_mnist/resnet.lua: batch
-- norm without conv bias, residual blocks (x + f(x)), global average pooling.
local nn = tk.nn

local function conv_bn(channels)
  return nn.conv2d { out_channels = channels, kernel_size = 3, padding = 1, bias = false },
         nn.batch_norm2d {}
end

local function block(channels)
  local c1, b1 = conv_bn(channels)
  local c2, b2 = conv_bn(channels)
  return nn.residual { c1, b1, nn.relu(), c2, b2 }
end

local stem_conv, stem_bn = conv_bn(8)
local mid_conv, mid_bn = conv_bn(16)

return tk.pipeline {
  seed = 3,
  data = {
    train = tk.data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                          labels = "fashion-mnist/train-labels-idx1-ubyte.gz",
                          scale = 1/255, normalize = { mean = 0.2860, std = 0.3530 } },
    batch_size = 32, shuffle = true,
  },
  model = nn.sequential {
    stem_conv, stem_bn, nn.relu(),
    block(8), nn.relu(),
    nn.max_pool2d(2),
    mid_conv, mid_bn, nn.relu(),
    block(16), nn.relu(),
    nn.adaptive_avg_pool2d(1), nn.flatten(),
    nn.linear(10),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.05, momentum = 0.9 },
  epochs = 1,
}
