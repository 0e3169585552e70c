"""The labels of the offline feature rows (``silver.user_labels``).

``purchased`` = 1 when the user bought within ``horizon_days`` after F, i.e. an event in
``[F+1, F+h]`` delivered by ``F+h``. It is written by the run whose logical date is ``F+h``
(when the window has closed), with a MERGE, into a separate table, so rerunning the features of
F never erases a label and labels never leak into features.

The labelled rows are the feature rows: their population is derived from silver with the
features' own rule (:func:`feature_population`), not read from the feature table.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    SILVER_EVENTS,
    USER_LABELS,
    check_frame,
    ensure_table,
    retry_on_conflict,
)
from clickstream.core.schema import parse_ds
from clickstream.pipeline.activity import events_in_scope, fan_out, lit_date


def feature_population(events: DataFrame, start: date, end: date) -> DataFrame:
    """(user_id, feature_date) of every feature row of [start, end], the features' own rule:
    each (user, event date, ingest date) fans out to the dates it counts for."""
    keys = events_in_scope(events, start, end).select("user_id", "event_date", "ingest_date")
    return fan_out(keys.distinct(), start, end).select("user_id", "feature_date").distinct()


def compute_label_range(events: DataFrame, start: str, end: str, horizon_days: int) -> DataFrame:
    """Labels of the feature rows of every feature date F in [start, end]: a purchase in the
    next ``horizon_days`` (event date in ``[F+1, F+h]``, delivered by ``F+h``), labelled on
    ``F+h``.

    The population is derived from silver with the features' own rule, not read from the
    feature table, so labels do not depend on which feature runs have happened yet. One scan
    for the whole range: each purchase fans out to the feature dates whose window holds it,
    ``max(event_date, ingest_date) - h <= F <= event_date - 1``, as the events do for the
    features.
    """
    first, last = date.fromisoformat(parse_ds(start)), date.fromisoformat(parse_ds(end))
    if last < first:
        raise ValueError(f"the range {start}..{end} is empty: the end is before the start")
    closes = last + timedelta(days=horizon_days)
    purchase_keys = events.where(
        F.col("event_date").between(lit_date(first + timedelta(days=1)), lit_date(closes))
        & (F.col("ingest_date") <= lit_date(closes))
        & (F.col("event_type") == "purchase")
    ).select("user_id", "event_date", "ingest_date")
    first_date = F.greatest(
        F.date_sub("event_date", horizon_days),
        F.date_sub("ingest_date", horizon_days),
        lit_date(first),
    )
    last_date = F.least(F.date_sub("event_date", 1), lit_date(last))
    purchases = (
        purchase_keys.where(first_date <= last_date)
        .select("user_id", F.explode(F.sequence(first_date, last_date)).alias("feature_date"))
        .groupBy("user_id", "feature_date")
        .agg(F.count("*").alias("purchases"))
    )
    bought = F.coalesce(F.col("purchases"), F.lit(0))
    return (
        feature_population(events, first, last)
        .join(purchases, on=["user_id", "feature_date"], how="left")
        .select(
            "user_id",
            "feature_date",
            F.lit(horizon_days).alias("horizon_days"),
            (bought > 0).cast("int").alias("purchased"),
            bought.cast("bigint").alias("purchases"),
            F.date_add("feature_date", horizon_days).alias("labelled_on"),
        )
    )


def build_labels(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    horizon_days: int,
    silver_schema: str = "silver",
) -> str | None:
    """MERGE the labels whose window closes on ``ds`` (feature date ``ds - horizon_days``).

    Returns the feature date labelled, or None when it has no feature rows (before the first
    events, or a day without users).
    """
    labelled = build_label_range(
        spark,
        start=ds,
        end=ds,
        catalog=catalog,
        horizon_days=horizon_days,
        silver_schema=silver_schema,
    )
    return next(iter(labelled), None)


def build_label_range(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    horizon_days: int,
    silver_schema: str = "silver",
) -> dict[str, int]:
    """The labels whose window closes on each date of [start, end], in one MERGE.

    Each closing date D labels feature date D - ``horizon_days`` (``labelled_on`` = D, as the
    daily run of D writes it). Returns the rows per feature date labelled; feature dates
    without feature rows are left out.
    """
    from delta.tables import DeltaTable

    if horizon_days < 1:
        raise ValueError(f"the label horizon must be at least 1 day, got {horizon_days}")
    events = spark.table(SILVER_EVENTS.name(catalog, silver_schema))
    shift = timedelta(days=horizon_days)
    labels = compute_label_range(
        events,
        (date.fromisoformat(parse_ds(start)) - shift).isoformat(),
        (date.fromisoformat(parse_ds(end)) - shift).isoformat(),
        horizon_days,
    )
    labels = check_frame(labels, USER_LABELS).persist()
    try:
        counts = {
            r["feature_date"].isoformat(): int(r["count"])
            for r in labels.groupBy("feature_date").count().collect()
        }
        if counts:
            table = ensure_table(spark, USER_LABELS, catalog, silver_schema)
            in_dates = ", ".join(f"DATE'{parse_ds(d)}'" for d in sorted(counts))
            retry_on_conflict(
                lambda: (
                    DeltaTable.forName(spark, table)
                    .alias("t")
                    .merge(
                        labels.alias("s"),
                        f"t.feature_date IN ({in_dates}) AND t.feature_date = s.feature_date "
                        "AND t.user_id = s.user_id AND t.horizon_days = s.horizon_days",
                    )
                    .whenMatchedUpdateAll()
                    .whenNotMatchedInsertAll()
                    .execute()
                )
            )
    finally:
        labels.unpersist()
    return dict(sorted(counts.items()))
