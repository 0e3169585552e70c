"""A range of dates through bronze and silver in one pass each: the first load of history.

The daily jobs land one date per run (``ingest.ingest``, ``silver.build_silver_events``).
Over months of history that is two small Spark jobs and three Delta commits per date. Here the
same parsing, the same rows and the same MERGE rule run once over the whole range:

* bronze: ``ingest.ingest_range``, the daily ingest's own code over many dates (one write per
  table, rows in = bronze + quarantined checked and the ingest log written for each date);
* silver: the range's bronze rows are cleaned with ``silver.clean`` (one row per event, the
  earliest delivery wins, the same rule the MERGE applies between dates) and merged with one
  MERGE pruned to the event dates they touch.

The tables end as the daily runs of those dates would leave them (tested against the daily
jobs in ``tests/spark_jobs/pipeline/test_pipeline_days.py``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from clickstream.core.contracts import (
    BRONZE_EVENTS,
    SILVER_EVENTS,
    check_frame,
    ensure_table,
)
from clickstream.core.schema import date_range
from clickstream.pipeline.ingest import committed_bronze
from clickstream.pipeline.silver import clean, merge_into_silver


def _counts_by_date(df: DataFrame, column: str = "ingest_date") -> dict[str, int]:
    return {r[column].isoformat(): int(r["count"]) for r in df.groupBy(column).count().collect()}


def silver_range(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    bronze_schema: str = "bronze",
    silver_schema: str = "silver",
) -> dict[str, int]:
    """MERGE the bronze rows ingested on [start, end] into silver; events per event date."""
    days = date_range(start, end)
    bronze = committed_bronze(spark, days=days, catalog=catalog, schema=bronze_schema)
    table = ensure_table(spark, SILVER_EVENTS, catalog, silver_schema)
    rows = check_frame(clean(bronze), SILVER_EVENTS).persist()
    try:
        by_event_date = _counts_by_date(rows, "event_date")
        merge_into_silver(
            spark,
            rows,
            table,
            sorted(by_event_date),
            bronze=BRONZE_EVENTS.name(catalog, bronze_schema),
            rebuilt=days,
        )
    finally:
        rows.unpersist()
    return by_event_date
