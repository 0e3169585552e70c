"""Raw CSV of one logical date -> ``<catalog>.bronze.events`` + ``bronze.events_quarantine``.

Input: every ``*.csv`` and ``*.csv.gz`` in ``<landing>/<ds>/`` (hidden ``.``/``_`` files are
skipped, as Spark skips them). A line equal to the REES46 header (optionally after a UTF-8
BOM) is a header wherever it appears, so concatenated files keep working; every other line is
a row.

Lines are read as text, not with Spark's CSV reader: its PERMISSIVE and DROPMALFORMED modes can
drop, merge or silently null-fill a malformed line, and then "rows in = rows out" cannot be
proven. Each line is split on ``,`` (the published files never quote a field), every field is
checked explicitly, and the line lands either in bronze (typed columns plus the raw line) or in
the quarantine with the *first* reason it fails, in this order:

========================  ===================================================================
reason                    the line ...
========================  ===================================================================
``non_utf8``              holds bytes that are not valid UTF-8
``empty_line``            is empty or only whitespace
``wrong_field_count``     does not have exactly 9 comma-separated fields
``bad_event_time``        event_time is not ``YYYY-MM-DD HH:MM:SS UTC`` or not a real instant
``bad_event_type``        event_type is not one of view, cart, remove_from_cart, purchase
``bad_product_id``        product_id is missing, not a plain integer, 0, or beyond a bigint
``bad_category_id``       category_id is missing, not a plain integer, 0, or beyond a bigint
``bad_price``             price is missing, negative, or not a plain decimal with at most 10
                          integer digits and 2 decimals (nothing is rounded silently)
``bad_user_id``           user_id is missing, not a plain integer, 0, or beyond a bigint
``missing_user_session``  user_session is empty: the event cannot be placed in a session
========================  ===================================================================

Fields are taken verbatim (no trimming). An empty ``category_code`` or ``brand`` is a null, as in
the published data, and is not a reason. Non-UTF-8 lines keep their exact bytes in the
quarantine's ``raw_bytes``; ``raw_record`` holds them with U+FFFD replacements so that every
reader can decode it.

Bronze is source-aligned: duplicated events are kept here (a file delivered twice, or an event
repeated by the tracker) and removed in silver, where the dedup rule lives.

Every run replaces the ``ingest_date = ds`` partition of both tables (Delta ``replaceWhere``), so
a rerun leaves them exactly as one run would; ``ingested_at`` comes from the logical date (or the
run's ``--ingest-ts``), never from the wall clock, for the same reason.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from typing import TypedDict

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.contracts import BRONZE_EVENTS, BRONZE_QUARANTINE, write_partition
from clickstream.jobs import JobError
from clickstream.schema import EVENT_TYPES, HEADER, RAW_COLUMNS, parse_ds
from clickstream.volumes import local_path

__all__ = ["HEADER", "REASONS", "IngestCounts", "IngestError", "ingest"]

REASONS = (
    "non_utf8",
    "empty_line",
    "wrong_field_count",
    "bad_event_time",
    "bad_event_type",
    "bad_product_id",
    "bad_category_id",
    "bad_price",
    "bad_user_id",
    "missing_user_session",
)
_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC$"
_INTEGER = r"^[0-9]{1,19}$"
_PRICE = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"


class IngestError(JobError):
    """An expected failure of the job (bad input or a broken invariant), shown as one line."""


class IngestCounts(TypedDict):
    files: int
    rows_in: int
    bronze: int
    quarantined: int
    reasons: dict[str, int]


def landing_files(landing_dir: str, ds: str) -> list[str]:
    """The day's CSV files, readable by this process (``/Volumes`` mapped when run locally)."""
    folder = f"{landing_dir.rstrip('/')}/{parse_ds(ds)}"
    local = local_path(folder)
    if not os.path.isdir(local):
        raise IngestError(
            f"no landing folder for {ds}: expected {folder}/ holding *.csv or *.csv.gz"
        )
    names = sorted(
        name
        for name in os.listdir(local)
        if name.endswith((".csv", ".csv.gz"))
        and not name.startswith((".", "_"))
        and os.path.isfile(os.path.join(local, name))
    )
    if not names:
        raise IngestError(f"no *.csv or *.csv.gz file for {ds} in {folder}/")
    return [os.path.join(local, name) for name in names]


def read_lines(spark: SparkSession, files: list[str], folder: str) -> DataFrame:
    """Every non-header line, with its source file named under ``folder`` (the logical path).

    The logical path (``/Volumes/...`` as the job was given it), not the local one, so lineage
    reads the same on Databricks and locally and a rerun elsewhere writes the same rows.
    """
    return (
        spark.read.text(files)
        .select(
            F.col("value").alias("raw_record"),
            F.concat(F.lit(f"{folder.rstrip('/')}/"), F.col("_metadata.file_name")).alias(
                "source_file"
            ),
        )
        .where(~F.col("raw_record").isin(HEADER, f"\ufeff{HEADER}"))
    )


def _field(name: str) -> Column:
    """The raw text of a field; null when the field is empty or the line too short."""
    value = F.get(F.col("_fields"), RAW_COLUMNS.index(name))
    return F.when(value != "", value)


def _integer(name: str) -> Column:
    value = _field(name)
    return F.when(value.rlike(_INTEGER), value.try_cast("bigint"))


def _reason() -> Column:
    """The first check a parsed line fails, in the documented order; null for a good line."""
    checks = (
        ("non_utf8", ~F.is_valid_utf8("raw_record")),
        ("empty_line", F.trim("raw_record") == ""),
        ("wrong_field_count", F.size("_fields") != len(RAW_COLUMNS)),
        ("bad_event_time", F.col("event_time").isNull()),
        ("bad_event_type", F.col("event_type").isNull()),
        ("bad_product_id", F.coalesce(F.col("product_id") <= 0, F.lit(True))),
        ("bad_category_id", F.coalesce(F.col("category_id") <= 0, F.lit(True))),
        ("bad_price", F.col("price").isNull()),
        ("bad_user_id", F.coalesce(F.col("user_id") <= 0, F.lit(True))),
        ("missing_user_session", F.col("user_session").isNull()),
    )
    reason = F.when(checks[0][1], checks[0][0])
    for name, failed in checks[1:]:
        reason = reason.when(failed, name)
    return reason


def utc_timestamp(value: datetime) -> Column:
    """A timestamp literal for an instant; a naive ``datetime`` is read as UTC.

    Built from an ISO string with an explicit offset: a Python ``datetime`` literal would be
    converted with the driver's local time zone.
    """
    instant = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return F.lit(instant.isoformat(sep=" ")).cast("timestamp")


def default_ingested_at(ds: str) -> datetime:
    """End of the logical day (UTC): when its data is complete, the same on every rerun."""
    day = date.fromisoformat(parse_ds(ds)) + timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=UTC)


def parse_lines(lines: DataFrame, ds: str, ingested_at: datetime) -> DataFrame:
    """Typed event columns, ``reason`` (null for a good line) and the lineage columns."""
    raw_time = _field("event_time")
    event_type = _field("event_type")
    price = _field("price")
    typed = lines.withColumn("_fields", F.split("raw_record", ",", -1)).select(
        "raw_record",
        "source_file",
        "_fields",
        F.when(
            raw_time.rlike(_TIME), F.try_to_timestamp(raw_time, F.lit("yyyy-MM-dd HH:mm:ss z"))
        ).alias("event_time"),
        F.when(event_type.isin(*EVENT_TYPES), event_type).alias("event_type"),
        _integer("product_id").alias("product_id"),
        _integer("category_id").alias("category_id"),
        _field("category_code").alias("category_code"),
        _field("brand").alias("brand"),
        F.when(price.rlike(_PRICE), price.try_cast("decimal(12,2)")).alias("price"),
        _integer("user_id").alias("user_id"),
        _field("user_session").alias("user_session"),
        # The text is UTC, so its date part is the UTC date, whatever the session time zone.
        F.try_to_date(F.substring(raw_time, 1, 10), "yyyy-MM-dd").alias("event_date"),
    )
    return typed.select(
        "*",
        _reason().alias("reason"),
        utc_timestamp(ingested_at).alias("ingested_at"),
        F.lit(date.fromisoformat(parse_ds(ds))).alias("ingest_date"),
    ).drop("_fields")


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


def _partition(ds: str) -> str:
    return f"ingest_date = DATE'{parse_ds(ds)}'"


def ingest(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    landing_dir: str,
    schema: str = "bronze",
    ingested_at: datetime | None = None,
) -> IngestCounts:
    """Land the files of ``ds`` into bronze and quarantine; fail unless no row was lost."""
    ds = parse_ds(ds)
    files = landing_files(landing_dir, ds)
    lines = read_lines(spark, files, f"{landing_dir.rstrip('/')}/{ds}")
    parsed = parse_lines(lines, ds, ingested_at or default_ingested_at(ds)).persist()
    try:
        rows_in = parsed.count()
        partition = _partition(ds)
        bronze = write_partition(
            spark, bronze_rows(parsed), BRONZE_EVENTS, catalog, partition, schema
        )
        quarantine = write_partition(
            spark, quarantine_rows(parsed), BRONZE_QUARANTINE, catalog, partition, schema
        )
    finally:
        parsed.unpersist()
    # Counted from the tables as written, not from the DataFrames that were meant to be written.
    landed = spark.table(bronze).where(_partition(ds)).count()
    reasons = {
        row["reason"]: int(row["count"])
        for row in spark.table(quarantine).where(_partition(ds)).groupBy("reason").count().collect()
    }
    counts = IngestCounts(
        files=len(files),
        rows_in=rows_in,
        bronze=landed,
        quarantined=sum(reasons.values()),
        reasons=dict(sorted(reasons.items())),
    )
    if counts["rows_in"] != counts["bronze"] + counts["quarantined"]:
        raise IngestError(
            f"rows lost for {ds}: {rows_in} rows in != {landed} bronze + "
            f"{counts['quarantined']} quarantined"
        )
    return counts
