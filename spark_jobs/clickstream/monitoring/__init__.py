"""Monitoring of what the models see and say: feature and prediction drift (Evidently)."""
