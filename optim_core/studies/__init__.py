"""Studies: many runs asked as one question (tune an optimizer's hyperparameters, map basins
of attraction, profile optimizers over a suite), each planned as vectorised batches."""
