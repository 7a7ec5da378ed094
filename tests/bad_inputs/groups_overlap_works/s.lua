return tk.pipeline {
  name = "base",
  seed = 1,
  data = {
    train = tk.data.csv { path = "d.csv" },
    valid = tk.data.split { fraction = 0.25 },
    batch_size = 4,
  },
  model = tk.nn.sequential {
    tk.nn.linear(8), tk.nn.relu(),
    tk.nn.linear(3),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 0.01, groups = { { match = "*.bias", weight_decay = 0 }, { match = "0.*", lr = 0.1 } } },
  epochs = 2,
}
