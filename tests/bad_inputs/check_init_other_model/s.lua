return tk.pipeline {
  name = "base",
  seed = 1,
  data = {
    train = tk.data.csv { path = "d.csv" },
    valid = tk.data.split { fraction = 0.25 },
    batch_size = 4,
  },
  model = tk.nn.sequential {
    tk.nn.linear(6), tk.nn.relu(),
    tk.nn.linear(3),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 0.01 },
  epochs = 2,
  init = { path = "w.safetensors", strict = true },
}
