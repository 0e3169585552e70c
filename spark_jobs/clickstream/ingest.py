"""Raw CSV of one logical date -> ``bronze.events`` + ``bronze.events_quarantine``.

Lines are read as text, so no malformed line can be dropped or silently mangled by a CSV
reader mode; each line is then split, typed with ``try_cast`` and either lands in bronze
(typed columns plus the raw record) or in the quarantine with the first reason it failed:

=====================  =========================================================
reason                 meaning
=====================  =========================================================
``non_utf8``           the line holds bytes that are not UTF-8
``wrong_field_count``  not exactly 9 comma-separated fields (also an empty line)
``bad_event_time``     not ``YYYY-MM-DD HH:MM:SS UTC``
``bad_event_type``     not one of view, cart, remove_from_cart, purchase
``bad_product_id``     missing, not an integer, or not positive
``bad_category_id``    missing or not an integer
``bad_price``          missing, not a number, negative, or above 1,000,000
``bad_user_id``        missing, not an integer, or not positive
=====================  =========================================================

Bronze is source-aligned: duplicated events are kept here and removed in silver. An empty
``user_session``, ``category_code`` or ``brand`` is a null, as in the published data.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.schema import EVENT_TYPES, RAW_COLUMNS

HEADER = ",".join(RAW_COLUMNS)
MAX_PRICE = 1_000_000
TIME_PATTERN = r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC$"


def read_lines(spark: SparkSession, paths: list[str]) -> DataFrame:
    """Every non-header line of the files, with the file it came from."""
    return (
        spark.read.text(paths)
        .select(
            F.col("value").alias("raw_record"),
            F.col("_metadata.file_path").alias("source_file"),
        )
        .where(F.col("raw_record") != F.lit(HEADER))
    )


def _field(i: int) -> Column:
    value = F.trim(F.element_at(F.col("_fields"), i + 1))
    return F.when(value != "", value)


def parse(lines: DataFrame, ds: str, ingested_at: datetime) -> DataFrame:
    """Typed columns, ``reason`` (null for a good row), ``ingest_date`` and ``ingested_at``."""
    raw = dict(zip(RAW_COLUMNS, range(len(RAW_COLUMNS)), strict=True))
    fields = lines.withColumn("_fields", F.split("raw_record", ",", -1))
    typed = fields.select(
        "raw_record",
        "source_file",
        F.size("_fields").alias("_n"),
        F.try_to_timestamp(
            F.regexp_extract(
                _field(raw["event_time"]), r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC$", 1
            ),
            F.lit("yyyy-MM-dd HH:mm:ss"),
        ).alias("event_time"),
        _field(raw["event_type"]).alias("event_type"),
        _field(raw["product_id"]).try_cast("bigint").alias("product_id"),
        _field(raw["category_id"]).try_cast("bigint").alias("category_id"),
        _field(raw["category_code"]).alias("category_code"),
        _field(raw["brand"]).alias("brand"),
        _field(raw["price"]).try_cast("decimal(12,2)").alias("price"),
        _field(raw["user_id"]).try_cast("bigint").alias("user_id"),
        _field(raw["user_session"]).alias("user_session"),
    )
    reason = (
        F.when(~F.is_valid_utf8("raw_record"), "non_utf8")
        .when(F.col("_n") != len(RAW_COLUMNS), "wrong_field_count")
        .when(F.col("event_time").isNull(), "bad_event_time")
        .when(
            ~F.col("event_type").isin(*EVENT_TYPES) | F.col("event_type").isNull(), "bad_event_type"
        )
        .when(F.col("product_id").isNull() | (F.col("product_id") <= 0), "bad_product_id")
        .when(F.col("category_id").isNull(), "bad_category_id")
        .when(
            F.col("price").isNull() | (F.col("price") < 0) | (F.col("price") > MAX_PRICE),
            "bad_price",
        )
        .when(F.col("user_id").isNull() | (F.col("user_id") <= 0), "bad_user_id")
    )
    return typed.select(
        "*",
        reason.alias("reason"),
        F.to_date("event_time").alias("event_date"),
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
        F.lit(date.fromisoformat(ds)).alias("ingest_date"),
    ).drop("_n")


BRONZE_COLUMNS = (
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
    "user_id", "user_session", "event_date", "raw_record", "source_file", "ingested_at",
    "ingest_date",
)  # fmt: skip
QUARANTINE_COLUMNS = ("raw_record", "source_file", "reason", "ingested_at", "ingest_date")


def split_good_and_bad(parsed: DataFrame) -> tuple[DataFrame, DataFrame]:
    good = parsed.where(F.col("reason").isNull()).select(*BRONZE_COLUMNS)
    bad = parsed.where(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS)
    return good, bad


def default_ingested_at(ds: str) -> datetime:
    """End of the logical day: derived from the run, so a rerun writes identical rows."""
    return datetime.combine(date.fromisoformat(ds) + timedelta(days=1), datetime.min.time())


def overwrite_partition(spark: SparkSession, df: DataFrame, table: str, ds: str) -> None:
    """Replace the ``ingest_date = ds`` partition only (create the table on first write)."""
    writer = df.write.format("delta").mode("overwrite")
    if spark.catalog.tableExists(table):
        writer.option("replaceWhere", f"ingest_date = DATE'{ds}'").saveAsTable(table)
    else:
        writer.partitionBy("ingest_date").saveAsTable(table)
