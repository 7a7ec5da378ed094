-- ONNX export test (tests/cli/export.sh): a small examples/fashion_mnist/cnn.lua with batch
-- norm and both poolings. conv2d + relu is fused in tkrun and two ONNX nodes.
local nn = tk.nn
return tk.pipeline {
  seed = 2,
  data = {
    train = tk.data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                          labels = "fashion-mnist/train-labels-idx1-ubyte.gz",
                          scale = 1/255, normalize = { mean = 0.2860, std = 0.3530 } },
    batch_size = 32, shuffle = true,
  },
  model = nn.sequential {
    nn.conv2d { out_channels = 8, kernel_size = 3, padding = 1 }, nn.relu(), nn.max_pool2d(2),
    nn.conv2d { out_channels = 16, kernel_size = 3, padding = 1 }, nn.batch_norm2d {}, nn.relu(),
    nn.avg_pool2d(2),
    nn.flatten(),
    nn.linear(32), nn.relu(), nn.dropout(0.25),
    nn.linear(10),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 1e-3 },
  epochs = 1,
}
