-- Iris (150 flowers, 4 measurements, 3 species) from the CSV that Debian's python3-sklearn
-- ships. Its first row is a count row ("150,4,setosa,..."), hence skip_rows = 1; the last
-- column is the class id. 20% held out for test, 10% for validation.
local nn, data = tk.nn, tk.data

return tk.pipeline {
  name = "iris",
  seed = 5,
  data = {
    train = data.csv { path = "/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv",
                       skip_rows = 1, normalize = "standard" },
    valid = data.split { from = "train", fraction = 0.1 },
    test  = data.split { from = "train", fraction = 0.2 },
    batch_size = 16, shuffle = true,
  },
  model = nn.sequential {
    nn.linear(16), nn.relu(),
    nn.linear(3),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.adam { lr = 1e-2 },
  epochs = 60,
}
