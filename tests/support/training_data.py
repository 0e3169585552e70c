"""Training data of the model tests, shared with the reliability tests that rerun the model
jobs: synthetic propensity features and labels, and silver events of two taste groups for the
recommender."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from clickstream.core.contracts import FEATURE_COLUMNS, ONLINE_FEATURES, USER_FEATURES, USER_LABELS
from tests.support.rows import SILVER_SCHEMA, event

PROPENSITY_AS_OF = "2019-11-30"
RECOMMENDER_AS_OF = date(2019, 11, 30)
TASTE_GROUPS = {0: range(100, 115), 1: range(200, 215)}  # disjoint product sets, one per group


def synthetic_features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Feature rows whose label depends on a latent propensity through purchases and views."""
    rng = np.random.default_rng(seed)
    propensity = rng.beta(1.2, 8.0, n)
    frame = pd.DataFrame(0.0, index=range(n), columns=list(FEATURE_COLUMNS))
    frame["views_30d"] = rng.poisson(5 + 20 * propensity)
    frame["carts_30d"] = rng.poisson(0.5 + 8 * propensity)
    frame["purchases_30d"] = rng.poisson(3 * propensity)
    frame["days_since_last_view"] = np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 30, n))
    frame["view_to_cart_30d"] = frame["carts_30d"] / frame["views_30d"].replace(0, np.nan)
    y = (rng.random(n) < propensity).astype(int)
    return frame, y, propensity


# Days of silver events before the as-of date: the split's earliest feature date (34 days
# back with the job's default windows) must be mature, 29 days after the first ingest date.
HISTORY_DAYS = 70


def propensity_tables(spark, schema: str, as_of: str, users: int = 300) -> None:
    """Feature and label tables for every feature date the split needs (signal included),
    and a silver ``events`` table whose first ingest date makes those dates mature."""
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    end = date.fromisoformat(as_of)
    history_events(spark, schema, end - timedelta(days=HISTORY_DAYS))
    frames, labels = [], []
    for offset in range(0, 40):
        day = end - timedelta(days=offset)
        x, y, _ = synthetic_features(users, seed=offset)
        x.insert(0, "feature_date", day)
        x.insert(0, "user_id", np.arange(users, dtype="int64") + 1000)
        frames.append(x)
        labels.append(
            pd.DataFrame(
                {
                    "user_id": x["user_id"],
                    "feature_date": day,
                    "horizon_days": 7,
                    "purchased": y,
                    "purchases": y,
                    "labelled_on": day + timedelta(days=7),
                }
            )
        )
    features = pd.concat(frames, ignore_index=True)
    typed = spark.createDataFrame(features).select(
        *(F.col(c.name).cast(c.type) for c in USER_FEATURES.columns)
    )
    typed.write.format("delta").mode("overwrite").saveAsTable(f"{schema}.user_features")
    spark.createDataFrame(pd.concat(labels, ignore_index=True)).select(
        *(F.col(c.name).cast(c.type) for c in USER_LABELS.columns)
    ).write.format("delta").mode("overwrite").saveAsTable(f"{schema}.user_labels")
    online = typed.where(F.col("feature_date") == F.lit(as_of).cast("date")).withColumn(
        "updated_at", F.current_timestamp()
    )
    online.select(*ONLINE_FEATURES.names).write.format("delta").mode("overwrite").saveAsTable(
        f"{schema}.user_features_online"
    )


def history_events(spark, schema: str, first_day: date) -> None:
    """A silver ``events`` table whose data begins on ``first_day`` (what maturity reads)."""
    rows = [event(1, first_day, "view"), event(2, first_day + timedelta(days=1), "view")]
    spark.createDataFrame(rows, SILVER_SCHEMA).write.format("delta").mode("overwrite").saveAsTable(
        f"{schema}.events"
    )


def taste_group_events() -> list[tuple]:
    """40 users in two taste groups; each views and carts products of its own group only.

    Group popularity is skewed so that the globally most popular products are group 0's:
    popularity then serves group 1 badly, while ALS learns the groups.
    """
    rows = []
    for user in range(1, 41):
        group = 0 if user <= 24 else 1
        products = list(TASTE_GROUPS[group])
        for offset in range(14):
            day = RECOMMENDER_AS_OF - timedelta(days=offset)
            product = products[(user * 7 + offset * 3) % len(products)]
            kind = "cart" if offset < 5 and offset % 2 == 0 else "view"
            rows.append(event(user, day, kind, product=product, session=f"{user}-{offset}"))
    # The user 1 bought product 100 yesterday: it must not be recommended to them.
    rows.append(
        event(1, RECOMMENDER_AS_OF - timedelta(days=1), "purchase", product=100, session="buy")
    )
    return rows


def recommender_silver(spark) -> str:
    """A new schema with the taste groups' silver ``events`` and the online features of
    RECOMMENDER_AS_OF's active users; returns its name."""
    schema = f"t_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA {schema}")
    spark.createDataFrame(taste_group_events(), SILVER_SCHEMA).write.format("delta").saveAsTable(
        f"{schema}.events"
    )
    # The active users of RECOMMENDER_AS_OF: 1..40 plus user 99, whom the model has never seen.
    online = (
        spark.range(1, 41)
        .union(spark.range(99, 100))
        .select(
            F.col("id").alias("user_id"),
            F.lit(RECOMMENDER_AS_OF.isoformat()).cast("date").alias("feature_date"),
        )
    )
    for column in ONLINE_FEATURES.columns[2:]:
        online = online.withColumn(
            column.name,
            F.current_timestamp() if column.type == "timestamp" else F.lit(0).cast(column.type),
        )
    online.write.format("delta").saveAsTable(f"{schema}.user_features_online")
    return schema
