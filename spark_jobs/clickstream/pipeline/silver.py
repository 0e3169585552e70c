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
  date changes nothing;
* silver reflects the current bronze of the date: when the date was delivered again (a
  corrected file replaces its bronze), an event it no longer delivers moves to its next
  delivery in bronze, or is deleted when there is none. The table then equals a fresh build
  from bronze (tested). Finding those rows reads silver's rows of the ingest date (Delta file
  statistics on ``ingest_date`` skip the other files).

The job reads the date's bronze only as its ingest committed it (``ingest.committed_bronze``:
the ingest log is the date's commit record), so an ingest that stopped between its writes is
never built on.
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
from clickstream.pipeline.ingest import committed_bronze


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


KEY = ["event_date", "event_id"]


def _dates_sql(dates) -> str:
    return ", ".join(f"DATE'{parse_ds(d)}'" for d in dates)


def _redelivered(
    spark: SparkSession, rows: DataFrame, table: str, bronze: str, rebuilt: list[str]
) -> tuple[DataFrame | None, list[str]]:
    """What else the MERGE of ``rows`` needs when ``rebuilt`` ingest dates were delivered
    again: every silver row attributed to one of them that ``rows`` (their bronze as it is now)
    no longer holds (a corrected line, a retracted line, a file withdrawn) moves to the event's
    next delivery in bronze, or is flagged ``_delete`` when no other delivery holds it. Returns
    those rows and their event dates (none on a first build or a rerun of the same delivery).
    """
    in_rebuilt = _dates_sql(rebuilt)
    orphans = (
        spark.table(table)
        .where(f"ingest_date IN ({in_rebuilt})")
        .join(rows.select(*KEY), KEY, "left_anti")
        .select(*SILVER_EVENTS.names)
    )
    found = orphans.select("event_date").distinct().collect()
    dates = sorted(r["event_date"].isoformat() for r in found)
    if not dates:  # the usual case (a first build, a rerun): one query, nothing kept
        return None, []
    # Cut from the tables' lineage: the MERGE below rewrites the table these rows come from.
    orphans = orphans.localCheckpoint()
    others = spark.table(bronze).where(
        f"NOT ingest_date IN ({in_rebuilt}) AND event_date IN ({_dates_sql(dates)})"
    )
    moved = check_frame(clean(others), SILVER_EVENTS).join(orphans.select(*KEY), KEY, "left_semi")
    gone = orphans.join(moved.select(*KEY), KEY, "left_anti")
    changes = moved.withColumn("_delete", F.lit(False)).unionByName(
        gone.withColumn("_delete", F.lit(True))
    )
    return changes.localCheckpoint(), dates


def merge_into_silver(
    spark: SparkSession,
    rows: DataFrame,
    table: str,
    dates: list[str],
    *,
    bronze: str | None = None,
    rebuilt: list[str] = (),
) -> None:
    """MERGE ``rows`` into ``table`` on (event_date, event_id), pruned to the event dates.

    ``rows`` are the cleaned bronze rows of the ``rebuilt`` ingest dates, in full: silver then
    reflects those dates' current bronze. A row attributed to one of them takes the attribution
    ``rows`` give it; one they no longer hold moves to its next delivery in ``bronze`` or is
    deleted (:func:`_redelivered`); an event delivered by an earlier date takes that date.
    Without ``rebuilt`` the rows are only added (an increment of deliveries, in tests).
    """
    from delta.tables import DeltaTable

    source = rows.withColumn("_delete", F.lit(False))
    if rebuilt:
        if bronze is None:
            raise ValueError("merge_into_silver: rebuilt dates need the bronze table")
        changes, moved_dates = _redelivered(spark, rows, table, bronze, list(rebuilt))
        if moved_dates:
            source = source.unionByName(changes)
            dates = sorted(set(dates) | set(moved_dates))
    if not dates:
        return
    in_rebuilt = _dates_sql(rebuilt) if rebuilt else "NULL"
    retry_on_conflict(
        lambda: (
            DeltaTable.forName(spark, table)
            .alias("t")
            .merge(
                source.alias("s"),
                f"t.event_date IN ({_dates_sql(dates)}) AND t.event_date = s.event_date "
                "AND t.event_id = s.event_id",
            )
            .whenMatchedDelete(condition="s._delete")
            .whenMatchedUpdate(
                condition="NOT s._delete AND ("
                f"(t.ingest_date IN ({in_rebuilt}) AND (s.ingest_date <> t.ingest_date "
                "OR s.source_file <> t.source_file)) "
                "OR s.ingest_date < t.ingest_date "
                "OR (s.ingest_date = t.ingest_date AND s.source_file < t.source_file))",
                set={"ingest_date": "s.ingest_date", "source_file": "s.source_file"},
            )
            .whenNotMatchedInsert(
                condition="NOT s._delete",
                values={c: f"s.{c}" for c in SILVER_EVENTS.names},
            )
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
    day = committed_bronze(spark, days=[ds], catalog=catalog, schema=bronze_schema)
    table = ensure_table(spark, SILVER_EVENTS, catalog, silver_schema)
    rows = check_frame(clean(day), SILVER_EVENTS).persist()
    try:
        stats = rows.groupBy("event_date").count().collect()
        dates = sorted(r["event_date"].isoformat() for r in stats)
        merge_into_silver(
            spark,
            rows,
            table,
            dates,
            bronze=BRONZE_EVENTS.name(catalog, bronze_schema),
            rebuilt=[ds],
        )
    finally:
        rows.unpersist()
    return {
        "events": sum(r["count"] for r in stats),
        "event_dates": {r["event_date"].isoformat(): r["count"] for r in stats},
        "table": table,
    }
