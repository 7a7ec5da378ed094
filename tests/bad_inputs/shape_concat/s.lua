return tk.pipeline {
  data = { train = tk.data.csv { path = "d.csv" }, batch_size = 4 },
  model = tk.nn.graph(function(x)
    local a = tk.nn.linear(8)(x)
    local b = tk.nn.reshape{2, 2}(x)
    return tk.nn.linear(3)(tk.nn.flatten()(tk.nn.concat { a, b }))
  end),
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.1 },
}
