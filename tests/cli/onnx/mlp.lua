-- ONNX export test (tests/cli/export.sh): a small examples/fashion_mnist/mlp.lua. The
-- linear + relu pairs are fused in tkrun and become two ONNX nodes each; dropout an Identity.
local nn = tk.nn
return tk.pipeline {
  seed = 1,
  data = {
    train = tk.data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                          labels = "fashion-mnist/train-labels-idx1-ubyte.gz",
                          scale = 1/255, normalize = { mean = 0.2860, std = 0.3530 } },
    batch_size = 32, shuffle = true,
  },
  model = nn.sequential {
    nn.flatten(),
    nn.linear(64), nn.relu(), nn.dropout(0.2),
    nn.linear(32), nn.relu(),
    nn.linear(10),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 1e-3 },
  epochs = 1,
}
