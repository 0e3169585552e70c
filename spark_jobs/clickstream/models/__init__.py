"""Models: the MLflow registry with aliases, the promotion rule, the propensity model and the
ALS recommender."""
