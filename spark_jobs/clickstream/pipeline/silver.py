"""``bronze.events`` of one ingest date -> ``silver.events`` (typed, cleaned, deduplicated).

The event key ``event_id`` is the SHA-256 of the nine source fields as typed: two rows with
the same key are the same event delivered twice (a file sent again, a tracker retry), kept in
bronze and collapsed here. Silver is partitioned by ``event_date``, so a late event (day D-2
delivered in day D's file) lands in its own event-date partition.

The write is one Delta MERGE on ``(event_date, event_id)``, restricted to the event dates the
day delivered (partition pruning: cost bounded by the day, never a scan of the history):

* a new event is inserted;
* an event already present is kept once; when it is delivered again by an *earlier* ingest
  date, the row takes that date and file. So the table does not depend on the order in which
  dates are processed (a backfill out of order gives the sequential result), and a rerun of a
  date changes nothing.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    BRONZE_EVENTS,
    SILVER_EVENTS,
    check_frame,
    ensure_table,
    retry_on_conflict,
)
from clickstream.core.schema import RAW_COLUMNS, parse_ds


def with_event_id(events: DataFrame) -> DataFrame:
    """``event_id``: sha2 of the typed source fields (null-safe, unambiguous separators)."""
    parts = [F.coalesce(F.col(c).cast("string"), F.lit("\u0000")) for c in RAW_COLUMNS]
    return events.withColumn("event_id", F.sha2(F.concat_ws("\u001f", *parts), 256))


def clean(bronze: DataFrame) -> DataFrame:
    """Bronze rows -> silver rows, one per ``event_id`` (the first file in name order wins)."""
    keyed = with_event_id(bronze).select(
        "event_id",
        *RAW_COLUMNS,
        F.when(F.col("category_code").isNotNull(), F.split("category_code", r"\.")[0]).alias(
            "category_l1"
        ),
        "event_date",
        "ingest_date",
        "source_file",
    )
    first = Window.partitionBy("event_id").orderBy("ingest_date", "source_file")
    return keyed.withColumn("_n", F.row_number().over(first)).where(F.col("_n") == 1).drop("_n")


def merge_into_silver(spark: SparkSession, rows: DataFrame, table: str, dates: list[str]) -> None:
    """MERGE ``rows`` into ``table`` on (event_date, event_id), pruned to ``dates``."""
    from delta.tables import DeltaTable

    if not dates:
        return
    in_dates = ", ".join(f"DATE'{parse_ds(d)}'" for d in dates)
    retry_on_conflict(
        lambda: (
            DeltaTable.forName(spark, table)
            .alias("t")
            .merge(
                rows.alias("s"),
                f"t.event_date IN ({in_dates}) AND t.event_date = s.event_date "
                "AND t.event_id = s.event_id",
            )
            .whenMatchedUpdate(
                condition="s.ingest_date < t.ingest_date "
                "OR (s.ingest_date = t.ingest_date AND s.source_file < t.source_file)",
                set={"ingest_date": "s.ingest_date", "source_file": "s.source_file"},
            )
            .whenNotMatchedInsertAll()
            .execute()
        )
    )


def build_silver_events(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    bronze_schema: str = "bronze",
    silver_schema: str = "silver",
) -> dict:
    """Merge the bronze rows ingested on ``ds`` into silver; returns counts for the log."""
    ds = parse_ds(ds)
    bronze = BRONZE_EVENTS.name(catalog, bronze_schema)
    if not spark.catalog.tableExists(bronze):
        raise ValueError(f"{bronze} does not exist: run ingest_events for {ds} first")
    table = ensure_table(spark, SILVER_EVENTS, catalog, silver_schema)
    day = spark.table(bronze).where(F.col("ingest_date") == F.lit(ds).cast("date"))
    rows = check_frame(clean(day), SILVER_EVENTS).persist()
    try:
        stats = rows.groupBy("event_date").count().collect()
        dates = sorted(r["event_date"].isoformat() for r in stats)
        merge_into_silver(spark, rows, table, dates)
    finally:
        rows.unpersist()
    return {
        "events": sum(r["count"] for r in stats),
        "event_dates": {r["event_date"].isoformat(): r["count"] for r in stats},
        "table": table,
    }
