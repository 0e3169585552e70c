"""The ALS product recommender: interactions, model, evaluation, training, serving."""
