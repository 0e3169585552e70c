"""Raw CSV of one logical date -> ``<catalog>.bronze.events`` + ``bronze.events_quarantine``.

The day's files are read and each line is checked by :mod:`clickstream.pipeline.landing`
(which files are read, header lines, the quarantine reasons and their order): a good line lands
in bronze (typed columns plus the raw line), any other line in the quarantine with the first
reason it fails.

Bronze is source-aligned: duplicated events are kept here (a file delivered twice, or an event
repeated by the tracker) and removed in silver, where the dedup rule lives.

Every run replaces the ``ingest_date = ds`` partition of both tables (Delta ``replaceWhere``), so
a rerun leaves them exactly as one run would; ``ingested_at`` comes from the logical date (or the
run's ``--ingest-ts``), never from the wall clock, for the same reason.

Once rows in = bronze + quarantined is verified, the run replaces the row of ``ds`` in
``bronze.events_ingest_log`` (files read, rows in, bronze, quarantined, lines per reason): the
record that the date *was* ingested. It tells an empty day (header-only or 0-byte files: 0 rows,
which the data-quality job reports as a failed blocking row-count expectation) from a date that
was never ingested (which the data-quality job refuses to validate).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import TypedDict

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core import contracts
from clickstream.core.contracts import BRONZE_EVENTS, BRONZE_QUARANTINE, Contract, write_partition
from clickstream.core.schema import date_range, parse_ds
from clickstream.pipeline.landing import (
    IngestError,
    Log,
    landing_files,
    parse_lines,
    read_landing,
    utc_text,
)

BRONZE_INGEST_LOG = Contract(
    schema="bronze",
    table="events_ingest_log",
    comment="one row per ingest_date: what its last successful ingest read and landed",
    columns=(
        contracts.Column("ingest_date", "date", False, "logical date ingested"),
        contracts.Column("files", "int", False, "CSV files read"),
        contracts.Column("rows_in", "bigint", False, "lines read, recognised headers excluded"),
        contracts.Column("bronze", "bigint", False, "rows landed in bronze.events"),
        contracts.Column("quarantined", "bigint", False, "lines in bronze.events_quarantine"),
        contracts.Column("reasons", "string", False, "JSON object: quarantine reason -> lines"),
        contracts.Column("ingested_at", "timestamp", False),
    ),
)


class IngestCounts(TypedDict):
    files: int
    rows_in: int
    bronze: int
    quarantined: int
    reasons: dict[str, int]


def default_ingested_at(ds: str) -> datetime:
    """End of the logical day (UTC): when its data is complete, the same on every rerun."""
    day = date.fromisoformat(parse_ds(ds)) + timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=UTC)


def bronze_rows(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reason").isNull()).select(*BRONZE_EVENTS.names)


def quarantine_rows(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reason").isNotNull()).select(
        F.make_valid_utf8("raw_record").alias("raw_record"),
        F.col("raw_record").cast("binary").alias("raw_bytes"),
        "source_file",
        "reason",
        "ingested_at",
        "ingest_date",
    )


def ingest_log_frame(
    spark: SparkSession, counts: dict[str, IngestCounts], stamps: dict[str, datetime]
) -> DataFrame:
    """The ``bronze.events_ingest_log`` rows of verified ingests, one per date of ``counts``."""
    columns = [c for c in BRONZE_INGEST_LOG.columns if c.name != "ingested_at"]
    rows = [
        (
            date.fromisoformat(parse_ds(ds)),
            c["files"],
            c["rows_in"],
            c["bronze"],
            c["quarantined"],
            json.dumps(c["reasons"], sort_keys=True),
            utc_text(stamps[ds]),
        )
        for ds, c in counts.items()
    ]
    schema = ", ".join(f"`{c.name}` {c.type}" for c in columns) + ", `ingested_at` string"
    frame = spark.createDataFrame(rows, schema)
    return frame.withColumn("ingested_at", F.col("ingested_at").cast("timestamp"))


def ingest(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    landing_dir: str,
    schema: str = "bronze",
    ingested_at: datetime | None = None,
    log: Log = print,
) -> IngestCounts:
    """Land the files of ``ds`` into bronze and quarantine; fail unless no row was lost.

    ``log`` receives the notes of the run (a file whose header is not the REES46 header).
    """
    ds = parse_ds(ds)
    return ingest_range(
        spark,
        start=ds,
        end=ds,
        catalog=catalog,
        landing_dir=landing_dir,
        schema=schema,
        ingested_at=ingested_at,
        log=log,
    )[ds]


def _range_predicate(days: list[str]) -> str:
    return f"ingest_date >= DATE'{days[0]}' AND ingest_date <= DATE'{days[-1]}'"


def ingest_range(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    landing_dir: str,
    schema: str = "bronze",
    ingested_at: datetime | None = None,
    log: Log = print,
) -> dict[str, IngestCounts]:
    """Land every date of [start, end] in one write per table; the counts of each date.

    The daily job is the range of one date; the first load of history (``load_history.py``)
    passes many. Each date keeps its own ``ingest_date`` and ``ingested_at`` (the end of the
    date unless ``ingested_at`` is given, for a single date only). Fails before writing when a
    date has no landing file; after writing when any date lost a row (rows in != bronze +
    quarantined, counted from the tables as written); then records each date's row of
    ``bronze.events_ingest_log``.
    """
    days = date_range(start, end)
    if ingested_at is not None and len(days) > 1:
        raise ValueError("--ingest-ts applies to one date; a range records the end of each date")
    stamps = {ds: ingested_at or default_ingested_at(ds) for ds in days}
    files = {ds: landing_files(landing_dir, ds) for ds in days}
    parsed = parse_lines(read_landing(spark, files, landing_dir, stamps, log=log)).persist()
    predicate = _range_predicate(days)
    try:
        rows_in = {
            r["ingest_date"].isoformat(): int(r["count"])
            for r in parsed.groupBy("ingest_date").count().collect()
        }
        bronze = write_partition(
            spark, bronze_rows(parsed), BRONZE_EVENTS, catalog, predicate, schema
        )
        quarantine = write_partition(
            spark, quarantine_rows(parsed), BRONZE_QUARANTINE, catalog, predicate, schema
        )
    finally:
        parsed.unpersist()
    # Counted from the tables as written, not from the DataFrames that were meant to be written.
    landed = {
        r["ingest_date"].isoformat(): int(r["count"])
        for r in spark.table(bronze).where(predicate).groupBy("ingest_date").count().collect()
    }
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
    lost = [
        f"{ds}: {c['rows_in']} rows in != {c['bronze']} bronze + {c['quarantined']} quarantined"
        for ds, c in counts.items()
        if c["rows_in"] != c["bronze"] + c["quarantined"]
    ]
    if lost:
        raise IngestError(f"rows lost for {'; '.join(lost)}")
    ingest_log = ingest_log_frame(spark, counts, stamps)
    write_partition(spark, ingest_log, BRONZE_INGEST_LOG, catalog, predicate, schema)
    return counts
