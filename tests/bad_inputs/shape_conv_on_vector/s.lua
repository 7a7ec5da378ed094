return tk.pipeline {
  name = "base",
  seed = 1,
  data = {
    train = tk.data.csv { path = "d.csv" },
    valid = tk.data.split { fraction = 0.25 },
    batch_size = 4,
  },
  model = tk.nn.sequential {
    tk.nn.conv2d { out_channels = 2, kernel_size = 3 }, tk.nn.flatten(),
    tk.nn.linear(3),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 0.01 },
  epochs = 2,
}
