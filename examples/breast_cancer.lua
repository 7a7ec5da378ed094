-- Breast cancer Wisconsin (569 tumours, 30 features, malignant/benign) from the CSV that
-- Debian's python3-sklearn ships; its first row is a count row, hence skip_rows = 1.
local nn, data = tk.nn, tk.data

return tk.pipeline {
  name = "breast-cancer",
  seed = 5,
  data = {
    train = data.csv { path = "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv",
                       skip_rows = 1, normalize = "standard" },
    valid = data.split { from = "train", fraction = 0.1 },
    test  = data.split { from = "train", fraction = 0.2 },
    batch_size = 32, shuffle = true,
  },
  model = nn.sequential {
    nn.linear(32), nn.relu(),
    nn.dropout(0.2),
    nn.linear(2),
  },
  loss = tk.loss.cross_entropy {},
  optimizer = tk.optim.sgd { lr = 0.05, momentum = 0.9, weight_decay = 1e-4 },
  epochs = 40,
}
