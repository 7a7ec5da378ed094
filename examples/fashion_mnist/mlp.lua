-- The PyTorch "Quickstart" tutorial model on FashionMNIST: Flatten, Linear 784->512, ReLU,
-- Linear 512->512, ReLU, Linear 512->10; Adam 1e-3, batch 64; 10% of train held out for
-- validation, tested on t10k. The data comes from Debian's dataset-fashion-mnist package.
-- Weight decay spares the biases (a parameter group), the learning rate warms up and then
-- follows a cosine, and the gradient norm is clipped.
local nn, data = tk.nn, tk.data

return tk.pipeline {
  name = "fashion-mnist-mlp",
  seed = 6666,
  data = {
    train = data.idx { images = "fashion-mnist/train-images-idx3-ubyte.gz",
                       labels = "fashion-mnist/train-labels-idx1-ubyte.gz",
                       scale = 1/255, normalize = { mean = 0.2860, std = 0.3530 } },
    valid = data.split { from = "train", fraction = 0.1 },
    test  = data.idx { images = "fashion-mnist/t10k-images-idx3-ubyte.gz",
                       labels = "fashion-mnist/t10k-labels-idx1-ubyte.gz",
                       scale = 1/255, normalize = { mean = 0.2860, std = 0.3530 } },
    batch_size = 64, shuffle = true,
  },
  model = nn.sequential {
    nn.flatten(),
    nn.linear(512), nn.relu(),
    nn.linear(512), nn.relu(),
    nn.linear(10),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam {
    lr = 1e-3, weight_decay = 1e-5,
    groups = { { match = "*.bias", weight_decay = 0 } },
  },
  schedule = tk.sched.cosine { warmup_steps = 500, warmup_start_factor = 0.1 },
  clip_grad_norm = 5.0,
  epochs = 10,
}
