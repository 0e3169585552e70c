"""A range of dates through bronze and silver in one pass each: the first load of history.

The daily jobs land one date per run (``ingest.ingest``, ``silver.build_silver_events``).
Over months of history that is two small Spark jobs and three Delta commits per date. Here the
same parsing, the same rows and the same MERGE rule run once over the whole range:

* bronze: every date's files are parsed with ``ingest.parse_lines`` (its own ``ingest_date``
  and ``ingested_at``), and bronze and quarantine are replaced for the range with one
  ``replaceWhere`` each; rows in = bronze + quarantined is checked for every date, and each
  date gets its ``bronze.events_ingest_log`` row as the daily job writes it;
* silver: the range's bronze rows are cleaned with ``silver.clean`` (one row per event, the
  earliest delivery wins, the same rule the MERGE applies between dates) and merged with one
  MERGE pruned to the event dates they touch.

The tables end as the daily runs of those dates would leave them (tested against the daily
jobs in ``tests/spark_jobs/test_pipeline_days.py``).
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.contracts import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    SILVER_EVENTS,
    check_frame,
    ensure_table,
    write_partition,
)
from clickstream.ingest import (
    BRONZE_INGEST_LOG,
    IngestCounts,
    IngestError,
    bronze_rows,
    default_ingested_at,
    ingest_log_frame,
    landing_files,
    parse_lines,
    quarantine_rows,
    read_lines,
)
from clickstream.schema import date_range
from clickstream.silver import clean, merge_into_silver


def _range_predicate(column: str, days: list[str]) -> str:
    return f"{column} >= DATE'{days[0]}' AND {column} <= DATE'{days[-1]}'"


def _counts_by_date(df: DataFrame, column: str = "ingest_date") -> dict[str, int]:
    return {r[column].isoformat(): int(r["count"]) for r in df.groupBy(column).count().collect()}


def ingest_range(
    spark: SparkSession, *, start: str, end: str, catalog: str, landing_dir: str,
    schema: str = "bronze", log=print,
) -> dict[str, IngestCounts]:  # fmt: skip
    """Land every date of [start, end] into bronze and quarantine; per-date counts.

    Fails (nothing written) when a date has no landing file, and after writing when any date
    lost a row.
    """
    days = date_range(start, end)
    folder = landing_dir.rstrip("/")
    files = {ds: landing_files(landing_dir, ds) for ds in days}
    parsed_days = [
        parse_lines(
            read_lines(spark, files[ds], f"{folder}/{ds}", log=log), ds, default_ingested_at(ds)
        )
        for ds in days
    ]
    parsed = reduce(DataFrame.unionByName, parsed_days).persist()
    try:
        rows_in = _counts_by_date(parsed)
        predicate = _range_predicate("ingest_date", days)
        bronze = write_partition(
            spark, bronze_rows(parsed), BRONZE_EVENTS, catalog, predicate, schema
        )
        quarantine = write_partition(
            spark, quarantine_rows(parsed), BRONZE_QUARANTINE, catalog, predicate, schema
        )
    finally:
        parsed.unpersist()
    # Counted from the tables as written, as the daily job does.
    landed = _counts_by_date(spark.table(bronze).where(predicate))
    reasons: dict[str, dict[str, int]] = {ds: {} for ds in days}
    for row in (
        spark.table(quarantine).where(predicate).groupBy("ingest_date", "reason").count().collect()
    ):
        reasons[row["ingest_date"].isoformat()][row["reason"]] = int(row["count"])
    counts = {
        ds: IngestCounts(
            files=len(files[ds]),
            rows_in=rows_in.get(ds, 0),
            bronze=landed.get(ds, 0),
            quarantined=sum(reasons[ds].values()),
            reasons=dict(sorted(reasons[ds].items())),
        )
        for ds in days
    }
    lost = [ds for ds, c in counts.items() if c["rows_in"] != c["bronze"] + c["quarantined"]]
    if lost:
        raise IngestError(f"rows lost for {', '.join(lost)}: rows in != bronze + quarantined")
    ingest_log = reduce(
        DataFrame.unionByName,
        [ingest_log_frame(spark, ds, counts[ds], default_ingested_at(ds)) for ds in days],
    )
    write_partition(spark, ingest_log, BRONZE_INGEST_LOG, catalog, predicate, schema)
    return counts


def silver_range(
    spark: SparkSession, *, start: str, end: str, catalog: str,
    bronze_schema: str = "bronze", silver_schema: str = "silver",
) -> dict[str, int]:  # fmt: skip
    """MERGE the bronze rows ingested on [start, end] into silver; events per event date."""
    days = date_range(start, end)
    table = ensure_table(spark, SILVER_EVENTS, catalog, silver_schema)
    bronze = spark.table(BRONZE_EVENTS.name(catalog, bronze_schema)).where(
        F.col("ingest_date").between(F.lit(days[0]).cast("date"), F.lit(days[-1]).cast("date"))
    )
    rows = check_frame(clean(bronze), SILVER_EVENTS).persist()
    try:
        by_event_date = _counts_by_date(rows, "event_date")
        merge_into_silver(spark, rows, table, sorted(by_event_date))
    finally:
        rows.unpersist()
    return by_event_date
