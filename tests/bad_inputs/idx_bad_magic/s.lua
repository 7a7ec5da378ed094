return tk.pipeline {
  data = {
    train = tk.data.idx { images = "images.idx", labels = "labels.idx", scale = 1 / 255 },
    batch_size = 4,
  },
  model = tk.nn.sequential { tk.nn.flatten(), tk.nn.linear(3) },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
}
