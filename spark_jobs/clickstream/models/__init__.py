"""Models: the MLflow registry with aliases, the propensity model and the ALS recommender."""
