"""The offline feature table (``silver.user_features``).

**Point in time.** The features of feature date F are what was knowable at the end of F: events
with ``event_date`` in the 30-day horizon ``[F-29, F]`` *and* delivered by then
(``ingest_date <= F``). A late event delivered after F never changes F's row, so a rerun or a
backfill of F gives the same row whenever it runs; an event after F changes nothing.

**Population.** One row per user with at least one such event in the horizon.

**Features.** For each window of 1, 7 and 30 days ending at F (see
:data:`clickstream.core.contracts.WINDOW_FEATURES`): views, carts, removals, purchases, spend,
distinct products/categories/brands, sessions, view-to-cart and cart-to-purchase ratios, mean
price viewed and bought; plus days since the last view/cart/purchase and the tenure, both
within the 30-day horizon.

**One computation for a day and for a range.** Events are first reduced to one row per
(user, event date, ingest date); each such row is then fanned out to the feature dates it
counts for (``max(event_date, ingest_date) <= F <= event_date + 29``, inside the range) and
aggregated per (user, F). A daily run is the range [F, F] and reads only the horizon; a bulk
run (first load, backfill) does a whole range in one job with the same code, so bulk equals
daily by construction (and a test checks it).

**Kept activity.** The (user, event date, ingest date) rows are kept in
``silver.user_daily_activity`` and refreshed by each feature run first
(:mod:`clickstream.pipeline.activity`), so a day reads 30 days of those small rows instead of
reducing 30 days of events again.

**Labels.** ``silver.user_labels`` is computed and written by
:mod:`clickstream.pipeline.labels`; :func:`build_feature_range` writes the features and then the
labels of a range of dates.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    RECENCY_FEATURES,
    USER_DAILY_ACTIVITY,
    USER_FEATURES,
    WINDOW_FEATURES,
    WINDOWS,
    write_partition,
)
from clickstream.core.schema import date_range, parse_ds
from clickstream.pipeline.activity import (
    daily_activity,
    events_in_scope,
    fan_out,
    refresh_daily_activity,
)
from clickstream.pipeline.labels import build_label_range


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator)


def _window_aggregates(window: int) -> list[Column]:
    inside = F.col("age") < window

    def total(column: str) -> Column:
        return F.coalesce(F.sum(F.when(inside, F.col(column))), F.lit(0))

    def distinct(column: str) -> Column:
        return F.size(F.array_distinct(F.flatten(F.collect_list(F.when(inside, F.col(column))))))

    return [
        total("views").alias(f"views_{window}d"),
        total("carts").alias(f"carts_{window}d"),
        total("removals").alias(f"removals_{window}d"),
        total("purchases").alias(f"purchases_{window}d"),
        total("spend").cast("decimal(18,2)").alias(f"spend_{window}d"),
        total("price_viewed").alias(f"_price_viewed_{window}d"),
        distinct("products").alias(f"distinct_products_{window}d"),
        distinct("categories").alias(f"distinct_categories_{window}d"),
        distinct("brands").alias(f"distinct_brands_{window}d"),
        distinct("sessions").alias(f"sessions_{window}d"),
    ]


def _derived(window: int) -> list[Column]:
    def c(name: str) -> Column:
        return F.col(f"{name}_{window}d")

    return [
        _ratio(c("carts"), c("views")).alias(f"view_to_cart_{window}d"),
        _ratio(c("purchases"), c("carts")).alias(f"cart_to_purchase_{window}d"),
        _ratio(c("_price_viewed").cast("double"), c("views")).alias(f"avg_price_viewed_{window}d"),
        _ratio(c("spend").cast("double"), c("purchases")).alias(f"avg_price_bought_{window}d"),
    ]


def _date_range(start: str, end: str) -> tuple[date, date]:
    first, last = date.fromisoformat(parse_ds(start)), date.fromisoformat(parse_ds(end))
    if last < first:
        raise ValueError(f"the range {start}..{end} is empty: the end is before the start")
    return first, last


def compute_features(events: DataFrame, start: str, end: str) -> DataFrame:
    """Feature rows for every feature date in [start, end] from silver ``events``."""
    first, last = _date_range(start, end)
    return features_from_activity(daily_activity(events_in_scope(events, first, last)), start, end)


def features_from_activity(activity: DataFrame, start: str, end: str) -> DataFrame:
    """Feature rows for every feature date in [start, end] from :func:`daily_activity` rows
    (computed on the fly, or read from ``silver.user_daily_activity``)."""
    first, last = _date_range(start, end)
    fanned = fan_out(events_in_scope(activity, first, last), first, last)

    def last_age(column: str) -> Column:
        return F.min(F.when(F.col(column) > 0, F.col("age")))

    aggregated = fanned.groupBy("user_id", "feature_date").agg(
        *(agg for window in WINDOWS for agg in _window_aggregates(window)),
        last_age("views").alias("days_since_last_view"),
        last_age("carts").alias("days_since_last_cart"),
        last_age("purchases").alias("days_since_last_purchase"),
        F.max("age").alias("tenure_days"),
    )
    derived = aggregated.select("*", *(col for window in WINDOWS for col in _derived(window)))
    names = [f"{name}_{w}d" for w in WINDOWS for name, _, _ in WINDOW_FEATURES]
    return derived.select(
        F.col("user_id").cast("bigint"),
        "feature_date",
        *(F.col(n).cast(_feature_type(n)) for n in names),
        *(F.col(n).cast("int") for n, _ in RECENCY_FEATURES),
    )


def _feature_type(column: str) -> str:
    return next(c.type for c in USER_FEATURES.columns if c.name == column)


def feature_dates_predicate(start: str, end: str) -> str:
    """The ``replaceWhere`` predicate of the feature dates [start, end]."""
    return f"feature_date >= DATE'{parse_ds(start)}' AND feature_date <= DATE'{parse_ds(end)}'"


def build_features(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    silver_schema: str = "silver",
    progress=print,
) -> str:
    """Replace the feature rows of [start, end] (``replaceWhere`` on ``feature_date``), from
    the daily activity (refreshed first), so a day reads the horizon's small activity rows
    instead of reducing 30 days of events again."""
    refresh = refresh_daily_activity(
        spark, catalog=catalog, silver_schema=silver_schema, progress=progress
    )
    progress(refresh.describe())
    # The activity as this refresh left it: a refresh running at the same time may commit
    # after it, from an older silver version (the next refresh corrects that).
    table = USER_DAILY_ACTIVITY.name(catalog, silver_schema)
    activity = spark.sql(f"SELECT * FROM {table} VERSION AS OF {refresh.activity_version}")
    features = features_from_activity(activity, start, end)
    return write_partition(
        spark, features, USER_FEATURES, catalog, feature_dates_predicate(start, end), silver_schema
    )


def build_feature_range(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    horizon_days: int,
    silver_schema: str = "silver",
    progress=print,
) -> str:
    """The feature rows of every date of [start, end] in one pass, then the labels whose
    window closes on each date of the range: the same tables as running the days one by one.
    """
    days = date_range(start, end)
    table = build_features(
        spark,
        start=start,
        end=end,
        catalog=catalog,
        silver_schema=silver_schema,
        progress=progress,
    )
    progress(f"features of {start}..{end} ({len(days)} day(s)) written to {table}")
    labelled = build_label_range(
        spark,
        start=start,
        end=end,
        catalog=catalog,
        horizon_days=horizon_days,
        silver_schema=silver_schema,
    )
    for feature_date, rows in labelled.items():
        progress(f"labels of feature date {feature_date} closed ({rows} rows)")
    return table
