"""The candidate pipelines of the propensity model, and what each learned.

Each candidate is one scikit-learn ``Pipeline``: a ``ColumnTransformer`` (median imputation
with missing-value indicators, ``log1p`` for the heavy-tailed counts and amounts, scaling for
the linear model) followed by the model: logistic regression and random forest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from clickstream.core.contracts import FEATURE_COLUMNS

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


def feature_importance(pipeline: Pipeline, x: pd.DataFrame) -> pd.Series:
    """Importance per model input (|coefficient| on scaled inputs, or impurity importance)."""
    model = pipeline.named_steps["model"]
    names = pipeline.named_steps["features"].get_feature_names_out()
    values = np.abs(model.coef_[0]) if hasattr(model, "coef_") else model.feature_importances_
    return pd.Series(values, index=names).sort_values(ascending=False)
