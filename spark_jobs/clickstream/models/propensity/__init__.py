"""The purchase-propensity model: training data, candidates, evaluation, training, serving."""
