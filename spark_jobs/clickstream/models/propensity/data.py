"""Propensity training data: labelled feature rows of two time windows, bounded for the driver.

**Split by time, never at random.** With label horizon ``h`` and as-of date ``T`` (the logical
date), the newest closed label belongs to feature date ``L = T - h``. The validation window is
the ``validation_days`` feature dates ending at ``L``; the training window is the
``train_days`` feature dates ending ``h`` days *before* the validation window starts, so no
training label (a purchase in ``(F, F+h]``) reaches into the validation period. Both windows are
tags on the MLflow run; the drift pipeline uses the training window as its reference.

The validation window is split in time once more: its earlier ``validation_days // 2`` dates
are the *selection* split (which candidate wins), the later ones the *evaluation* split (the
challenger against the champion, the reported figures). The rows that picked the winner never
judge it, so the choice's own luck does not inflate the comparison.

**Bounded driver memory.** scikit-learn trains on the driver. Each window is sampled on Spark
(a seeded Bernoulli sample) down to at most ``max_rows`` rows *before* ``toPandas()``, so a large
feature table cannot exhaust the driver; the sampling fraction is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from clickstream.core.contracts import FEATURE_COLUMNS
from clickstream.core.jobs import JobError
from clickstream.core.schema import parse_ds

LABEL = "purchased"


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
        if validation_days < 2:
            raise ValueError(
                "the validation window needs at least 2 days: a selection and a later "
                "evaluation split"
            )
        return cls(date.fromisoformat(parse_ds(as_of)), horizon_days, train_days, validation_days)

    @property
    def validation(self) -> tuple[date, date]:
        end = self.as_of - timedelta(days=self.horizon_days)
        return end - timedelta(days=self.validation_days - 1), end

    @property
    def selection(self) -> tuple[date, date]:
        """The earlier dates of the validation window: the candidates are compared here."""
        start = self.validation[0]
        return start, start + timedelta(days=self.validation_days // 2 - 1)

    @property
    def evaluation(self) -> tuple[date, date]:
        """The later dates of the validation window: challenger against champion, here."""
        return self.selection[1] + timedelta(days=1), self.validation[1]

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
            "selection_window_start": self.selection[0].isoformat(),
            "selection_window_end": self.selection[1].isoformat(),
            "evaluation_window_start": self.evaluation[0].isoformat(),
            "evaluation_window_end": self.evaluation[1].isoformat(),
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


def features_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The model input: every feature column as float (nullable ints become NaN)."""
    return df[list(FEATURE_COLUMNS)].astype("float64")


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
