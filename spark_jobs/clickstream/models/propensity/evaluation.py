"""How good a propensity model is on the validation rows: metrics, a baseline, the oracle and
per-user bootstrap intervals.

Every candidate, the current champion and the recency baseline are scored with :func:`metrics`
on the *same* rows, so their figures compare. The ranking metrics (ROC AUC, PR AUC, lift) use
the raw scores; only the log loss clips them away from 0 and 1. When the generator's ground
truth is available, :func:`oracle_auc` is the ROC AUC of each row's true probability of a
purchase (``clickstream.sources.ground_truth``): no model can rank better in expectation, and
:func:`lift_capture` is the share of its lift over chance a model achieves.

**Uncertainty.** A user appears once per feature date, so rows are not independent:
:func:`bootstrap_aucs` resamples *users* (each with all their rows) and recomputes the ROC AUC of
every score on the same resample, which gives both one model's interval and the paired interval
of a difference between two models.
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
    """Ranking metrics on the raw scores ``p`` (in [0, 1]); only the log loss clips them."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("scores must be probabilities in [0, 1]; squash or rank them first")
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        "brier_score": float(brier_score_loss(y, p)),
        "calibration_error": expected_calibration_error(y, p),
        "lift_top_decile": lift_at_top_decile(y, p),
    }


def recency_baseline(x: pd.DataFrame) -> np.ndarray:
    """A score without a model: more recent activity and more purchases rank higher.

    ``s = 1 / (1 + days since the last view) + 0.1 log(1 + purchases)`` is >= 0 and often > 1,
    so it is squashed by ``s / (1 + s)`` into [0, 1): the ranking (and so every ranking metric)
    is the raw score's, and the figures that need a probability are defined. It is not a
    calibrated probability: its log loss and calibration error say how far off it is.
    """
    since_view = x["days_since_last_view"].fillna(31.0).to_numpy(dtype=float)
    purchases = x["purchases_30d"].fillna(0.0).to_numpy(dtype=float)
    score = 1.0 / (1.0 + since_view) + 0.1 * np.log1p(purchases)
    return score / (1.0 + score)


def oracle_auc(y: np.ndarray, true_probability: np.ndarray) -> float:
    """ROC AUC of each row's true purchase probability: no model ranks better in expectation."""
    return float(roc_auc_score(np.asarray(y, dtype=int), true_probability))


def oracle_scores(
    rows: pd.DataFrame, users: pd.DataFrame, days: dict, horizon_days: int
) -> np.ndarray:
    """The true probability of a purchase within the horizon of each (user, feature date) row.

    ``users``: the generator's ``users.csv`` (``user_id, purchase_propensity,
    activity_share``); ``days``: its parsed ``days.csv``. Raises ``KeyError`` when a row's user
    or a day of its horizon is not covered.
    """
    from clickstream.sources.ground_truth import label_probability

    joined = rows[["user_id", "feature_date"]].merge(users, on="user_id", how="left")
    if joined[["purchase_propensity", "activity_share"]].isna().any().any():
        raise KeyError("the ground truth does not cover every user of the rows")
    return label_probability(
        joined["purchase_propensity"].to_numpy(),
        joined["activity_share"].to_numpy(),
        joined["feature_date"].to_numpy(),
        days,
        horizon_days,
    )


def _weighted_auc(y: np.ndarray, tie_group: np.ndarray, groups: int, w: np.ndarray) -> float:
    """ROC AUC with row weights; ``tie_group`` numbers the distinct scores in ascending order."""
    pos = np.bincount(tie_group, weights=w * y, minlength=groups)
    neg = np.bincount(tie_group, weights=w * (1 - y), minlength=groups)
    below = np.cumsum(neg) - neg  # negatives with a strictly lower score
    total = pos.sum() * neg.sum()
    return float((pos * (below + 0.5 * neg)).sum() / total) if total > 0 else float("nan")


def bootstrap_aucs(
    users: np.ndarray,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    replicates: int = 400,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """ROC AUC replicates of each score over the same per-user bootstrap resamples.

    Each replicate draws as many users as there are, with replacement, and weights every row of
    a user by how often the user was drawn. Pairing: replicate ``i`` of every score uses the
    same draw, so ``reps[a] - reps[b]`` is the bootstrap distribution of the difference.
    """
    y = np.asarray(y, dtype=float)
    _, user_index = np.unique(np.asarray(users), return_inverse=True)
    n_users = int(user_index.max()) + 1 if len(user_index) else 0
    ranked = {}
    for name, p in scores.items():
        values, tie_group = np.unique(np.asarray(p, dtype=float), return_inverse=True)
        ranked[name] = (tie_group, len(values))
    rng = np.random.default_rng(seed)
    out = {name: np.empty(replicates) for name in scores}
    for i in range(replicates):
        weight = np.bincount(rng.integers(0, n_users, n_users), minlength=n_users)[user_index]
        for name, (tie_group, groups) in ranked.items():
            out[name][i] = _weighted_auc(y, tie_group, groups, weight.astype(float))
    return out


def bootstrap_eces(
    users: np.ndarray,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    replicates: int = 400,
    seed: int = 0,
    bins: int = 10,
) -> dict[str, np.ndarray]:
    """Expected calibration error replicates of each score over the same per-user bootstrap
    resamples as :func:`bootstrap_aucs` (same draws for the same ``seed``): paired, so
    ``reps[a] - reps[b]`` is the bootstrap distribution of the difference."""
    y = np.asarray(y, dtype=float)
    _, user_index = np.unique(np.asarray(users), return_inverse=True)
    n_users = int(user_index.max()) + 1 if len(user_index) else 0
    edges = np.linspace(0.0, 1.0, bins + 1)
    binned = {}
    for name, p in scores.items():
        p = np.asarray(p, dtype=float)
        binned[name] = (np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1), p)
    rng = np.random.default_rng(seed)
    out = {name: np.empty(replicates) for name in scores}
    for i in range(replicates):
        weight = np.bincount(rng.integers(0, n_users, n_users), minlength=n_users)[user_index]
        weight = weight.astype(float)
        total = weight.sum()
        for name, (index, p) in binned.items():
            observed = np.bincount(index, weights=weight * y, minlength=bins)
            predicted = np.bincount(index, weights=weight * p, minlength=bins)
            out[name][i] = float(np.abs(observed - predicted).sum() / total) if total else np.nan
    return out


def interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates at ``level`` (two-sided)."""
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def lift_capture(model_auc: float, oracle: float) -> float:
    """Share of the oracle's lift over chance that the model captures."""
    return (model_auc - 0.5) / (oracle - 0.5) if oracle > 0.5 else float("nan")
