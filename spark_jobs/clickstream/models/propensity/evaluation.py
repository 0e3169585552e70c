"""How good a propensity model is on the validation rows: metrics, a baseline and the oracle.

Every candidate, the current champion and the recency baseline are scored with :func:`metrics`
on the *same* validation rows, so their figures compare. When the generator's ground truth is
available, :func:`oracle_auc` is the best ROC AUC any model could reach on those rows and
:func:`lift_capture` the share of it a model achieves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - predicted probability| over equal-width bins, weighted by size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            error += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(error)


def lift_at_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """Positive rate among the 10% highest scores / overall positive rate."""
    top = max(1, int(np.ceil(0.1 * len(p))))
    order = np.argsort(-p, kind="stable")[:top]
    base = y.mean()
    return float(y[order].mean() / base) if base > 0 else float("nan")


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier_score": float(brier_score_loss(y, p)),
        "calibration_error": expected_calibration_error(y, p),
        "lift_top_decile": lift_at_top_decile(y, p),
    }


def recency_baseline(x: pd.DataFrame) -> np.ndarray:
    """A score without a model: more recent activity and more purchases rank higher."""
    since_view = x["days_since_last_view"].fillna(31.0).to_numpy()
    purchases = x["purchases_30d"].to_numpy()
    return 1.0 / (1.0 + since_view) + 0.1 * np.log1p(purchases)


def oracle_auc(y: np.ndarray, true_propensity: np.ndarray) -> float:
    """ROC AUC of the generator's true propensity on the same rows: the best a model can do."""
    return float(roc_auc_score(np.asarray(y, dtype=int), true_propensity))


def lift_capture(model_auc: float, oracle: float) -> float:
    """Share of the oracle's lift over chance that the model captures."""
    return (model_auc - 0.5) / (oracle - 0.5) if oracle > 0.5 else float("nan")
