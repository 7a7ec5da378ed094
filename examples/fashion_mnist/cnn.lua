-- A small CNN on FashionMNIST: two conv-relu-maxpool blocks, then linear layers. Reaches
-- >= 91% test accuracy in 3 epochs. The equivalent PyTorch module is in
-- tests/gen_fixtures_models.py (same state_dict names).
local nn, data = tk.nn, tk.data
local norm = { mean = 0.2860, std = 0.3530 }

return tk.pipeline {
  name = "fashion-mnist-cnn",
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
    nn.conv2d { out_channels = 32, kernel_size = 3, padding = 1 }, nn.relu(), nn.max_pool2d(2),
    nn.conv2d { out_channels = 64, kernel_size = 3, padding = 1 }, nn.relu(), nn.max_pool2d(2),
    nn.flatten(),
    nn.linear(128), nn.relu(), nn.dropout(0.25),
    nn.linear(10),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 1e-3 },
  schedule = tk.sched.onecycle { max_lr = 3e-3 },
  epochs = 3,
}
