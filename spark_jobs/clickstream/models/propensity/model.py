"""Purchase-propensity training: time-split data, candidate pipelines, metrics, promotion rule.

**Split by time, never at random.** With label horizon ``h`` and as-of date ``T`` (the logical
date), the newest closed label belongs to feature date ``L = T - h``. The validation window is
the ``validation_days`` feature dates ending at ``L``; the training window is the
``train_days`` feature dates ending ``h`` days *before* the validation window starts, so no
training label (a purchase in ``(F, F+h]``) reaches into the validation period. Both windows are
tags on the MLflow run; the drift pipeline uses the training window as its reference.

**Bounded driver memory.** scikit-learn trains on the driver. Each window is sampled on Spark
(a seeded Bernoulli sample) down to at most ``max_rows`` rows *before* ``toPandas()``, so a large
feature table cannot exhaust the driver; the sampling fraction is logged.

**Candidates.** Each is one scikit-learn ``Pipeline``: a ``ColumnTransformer`` (median
imputation with missing-value indicators, ``log1p`` for the heavy-tailed counts and amounts,
scaling for the linear model) followed by the model: logistic regression and random forest.

**Promotion.** The best candidate by validation ROC AUC becomes ``challenger``; ``champion`` moves
to it only when it beats the current champion, scored on the *same* validation rows, by at least
``margin``. With no champion yet it must beat the recency baseline by the margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from clickstream.core.contracts import FEATURE_COLUMNS
from clickstream.core.jobs import JobError
from clickstream.core.schema import parse_ds

LABEL = "purchased"
# Types the candidate pipelines hold beyond skops' defaults; MLflow saves scikit-learn models
# with skops (not pickle) and refuses to load any type not listed here. The tree node storage
# is trusted because only this project's training job writes to the registry.
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "sklearn.tree._tree.Tree"]
# Ratios, means and recencies are null when undefined; the rest are counts and amounts >= 0.
NULLABLE_FEATURES = tuple(
    c
    for c in FEATURE_COLUMNS
    if c.startswith(("view_to_cart", "cart_to_purchase", "avg_price", "days_since"))
)
SKEWED_FEATURES = tuple(c for c in FEATURE_COLUMNS if c not in NULLABLE_FEATURES)


class TrainingDataError(JobError):
    """Not enough labelled history (or only one class) to train and validate."""


@dataclass(frozen=True)
class Windows:
    """Feature-date windows of one training, derived from the as-of date."""

    as_of: date
    horizon_days: int
    train_days: int
    validation_days: int

    @classmethod
    def build(cls, as_of: str, horizon_days: int, train_days: int, validation_days: int) -> Windows:
        if min(horizon_days, train_days, validation_days) < 1:
            raise ValueError("horizon, train and validation windows must be at least 1 day")
        return cls(date.fromisoformat(parse_ds(as_of)), horizon_days, train_days, validation_days)

    @property
    def validation(self) -> tuple[date, date]:
        end = self.as_of - timedelta(days=self.horizon_days)
        return end - timedelta(days=self.validation_days - 1), end

    @property
    def train(self) -> tuple[date, date]:
        end = self.validation[0] - timedelta(days=self.horizon_days + 1)
        return end - timedelta(days=self.train_days - 1), end

    @property
    def history_needed(self) -> int:
        """Days of feature history before ``as_of`` this split needs."""
        return (self.as_of - self.train[0]).days

    def tags(self) -> dict[str, str]:
        return {
            "as_of": self.as_of.isoformat(),
            "label_horizon_days": str(self.horizon_days),
            "train_window_start": self.train[0].isoformat(),
            "train_window_end": self.train[1].isoformat(),
            "validation_window_start": self.validation[0].isoformat(),
            "validation_window_end": self.validation[1].isoformat(),
        }


def labelled_rows(features, labels, start: date, end: date, horizon_days: int):
    """Feature rows of [start, end] joined with their closed labels (Spark DataFrames)."""
    from pyspark.sql import functions as F

    def in_window(df):
        return df.where(
            F.col("feature_date").between(F.lit(start.isoformat()), F.lit(end.isoformat()))
        )

    closed = in_window(labels).where(F.col("horizon_days") == horizon_days)
    return in_window(features).join(
        closed.select("user_id", "feature_date", LABEL), ["user_id", "feature_date"], "inner"
    )


def bounded_pandas(df, max_rows: int, seed: int) -> tuple[pd.DataFrame, float, int]:
    """(sample as pandas, sampling fraction, rows before sampling); never more than ``max_rows``.

    A Bernoulli sample with a fraction slightly above ``max_rows / rows`` and a final ``limit``
    keeps the driver bound exact without collecting the table first.
    """
    rows = df.count()
    fraction = 1.0 if rows <= max_rows else min(1.0, 1.05 * max_rows / rows)
    sampled = df if fraction >= 1.0 else df.sample(fraction=fraction, seed=seed)
    ordered = sampled.orderBy("feature_date", "user_id").limit(max_rows)
    return ordered.toPandas(), fraction, rows


def _preprocessing(scale: bool) -> ColumnTransformer:
    skewed = [
        ("impute", SimpleImputer(strategy="constant", fill_value=0.0)),
        ("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
    ]
    nullable = [("impute", SimpleImputer(strategy="median", add_indicator=True))]
    if scale:
        skewed.append(("scale", StandardScaler()))
        nullable.append(("scale", StandardScaler()))
    return ColumnTransformer(
        [
            ("counts", Pipeline(skewed), list(SKEWED_FEATURES)),
            ("ratios", Pipeline(nullable), list(NULLABLE_FEATURES)),
        ],
        verbose_feature_names_out=False,
    )


def candidates(seed: int = 0) -> dict[str, Pipeline]:
    """The two candidate pipelines, unfitted."""
    return {
        "logistic_regression": Pipeline(
            [
                ("features", _preprocessing(scale=True)),
                ("model", LogisticRegression(C=0.5, max_iter=2000)),
            ]
        ),
        "random_forest": Pipeline(
            [
                ("features", _preprocessing(scale=False)),
                (
                    "model",
                    RandomForestClassifier(
                        n_estimators=200,
                        min_samples_leaf=20,
                        max_features="sqrt",
                        n_jobs=2,
                        random_state=seed,
                    ),
                ),
            ]
        ),
    }


def features_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The model input: every feature column as float (nullable ints become NaN)."""
    return df[list(FEATURE_COLUMNS)].astype("float64")


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


def feature_importance(pipeline: Pipeline, x: pd.DataFrame) -> pd.Series:
    """Importance per model input (|coefficient| on scaled inputs, or impurity importance)."""
    model = pipeline.named_steps["model"]
    names = pipeline.named_steps["features"].get_feature_names_out()
    values = np.abs(model.coef_[0]) if hasattr(model, "coef_") else model.feature_importances_
    return pd.Series(values, index=names).sort_values(ascending=False)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_auc: float
    reference: str  # "champion vN" or "recency baseline"
    reference_auc: float

    @property
    def delta(self) -> float:
        return self.challenger_auc - self.reference_auc


def decide(
    challenger_auc: float,
    *,
    champion_auc: float | None,
    champion_version: str | None,
    baseline_auc: float,
    margin: float,
    metric: str = "ROC AUC",
    baseline: str = "recency baseline",
) -> Decision:
    """The promotion rule. A tie (or a gain below the margin) keeps the current champion.

    The same rule decides the recommender on precision@10 against the popularity baseline.
    """
    if champion_auc is None:
        reference, reference_auc = baseline, baseline_auc
    else:
        reference, reference_auc = f"champion v{champion_version}", champion_auc
    promote = challenger_auc >= reference_auc + margin and challenger_auc > reference_auc
    verb = "beats" if promote else "does not beat"
    reason = (
        f"challenger {metric} {challenger_auc:.4f} {verb} {reference} {reference_auc:.4f} "
        f"by the margin {margin:.4f} (delta {challenger_auc - reference_auc:+.4f})"
    )
    return Decision(promote, reason, challenger_auc, reference, reference_auc)


def check_trainable(y: np.ndarray, window: str, start: date, end: date) -> None:
    if len(y) == 0:
        raise TrainingDataError(
            f"no labelled feature rows in the {window} window {start}..{end}: the feature "
            "table needs more history (run the offline_feature_table DAG for those dates) or "
            "shorter windows"
        )
    if len(set(np.asarray(y).tolist())) < 2:
        raise TrainingDataError(
            f"the {window} window {start}..{end} has only one label class ({int(y[0])}); "
            "a classifier cannot be trained or validated on it"
        )
