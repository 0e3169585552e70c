"""Raw landing files of one logical date -> typed lines, each good or with its quarantine reason.

Input: every ``*.csv`` and ``*.csv.gz`` in ``<landing>/<ds>/`` (hidden ``.``/``_`` files are
skipped, as Spark skips them). A line equal to the REES46 header (optionally after a UTF-8
BOM) is a header wherever it appears, so concatenated files keep working; every other line is
a row. A missing folder, a folder without such a file, a file that cannot be read and a
``.gz`` file that is not a complete gzip stream fail the job with one line naming the file
(each ``.gz`` file is decompressed once on the driver first: Spark would fail half-way with a
Java stack trace).

**Columns are positional.** A file whose *first* line is a header of other columns (renamed,
reordered, missing or extra columns: a schema change upstream) cannot be parsed by position:
every line of that file, the header included, is quarantined as ``header_mismatch`` and the
job's log names the difference (e.g. ``missing brand; unexpected brand_name``), instead of
landing swapped ids or prices. A line "is a header" when every field is a name (letters,
digits, ``_`` and spaces, not starting with a digit) and at least one is a REES46 column
name; a file without a header (data from its first line) is read as before.

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
``header_mismatch``       is a header of other columns, or comes from a file starting with one
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
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.jobs import JobError
from clickstream.core.schema import EVENT_TYPES, HEADER, RAW_COLUMNS, parse_ds
from clickstream.core.volumes import local_path

REASONS = (
    "non_utf8",
    "empty_line",
    "header_mismatch",
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
# A column name in a header line: the same rule on the driver (Python) and in Spark (Java).
_NAME = r"^ *[A-Za-z_][A-Za-z0-9_ ]*$"
_MAX_HEADER_BYTES = 64 * 1024  # a first line longer than this is data, not a header

Log = Callable[[str], None]


class IngestError(JobError):
    """An expected failure of the job (bad input or a broken invariant), shown as one line."""


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


def header_names(line: str) -> list[str] | None:
    """The column names of ``line`` when it is a header line (of any columns), else None."""
    fields = line.removeprefix("\ufeff").split(",")
    if all(re.match(_NAME, f) for f in fields) and any(
        f.strip(" ").lower() in RAW_COLUMNS for f in fields
    ):
        return [f.strip(" ") for f in fields]
    return None


def header_difference(names: list[str]) -> str:
    """How the column names of a header differ from the REES46 header, in a few words."""
    missing = [c for c in RAW_COLUMNS if c not in names]
    unexpected = [n for n in names if n not in RAW_COLUMNS]
    repeated = sorted({n for n in names if names.count(n) > 1})
    parts = [
        f"{what} {', '.join(items)}"
        for what, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("repeated", repeated),
        )
        if items
    ]
    if parts:
        return "; ".join(parts)
    if names == list(RAW_COLUMNS):
        return "the same names, written with spaces around them"
    return f"columns in another order: {','.join(names)}"


def _first_line(path: str, shown: str) -> bytes:
    """The first line of a landing file; a ``.gz`` file is decompressed to its end once, so
    that a truncated or corrupt one fails here with its name, not half-way through Spark."""
    try:
        if not path.endswith(".gz"):
            with open(path, "rb") as handle:
                return handle.readline(_MAX_HEADER_BYTES)
        with gzip.open(path, "rb") as handle:
            first = handle.readline(_MAX_HEADER_BYTES)
            while handle.read(1 << 20):
                pass
            return first
    except (OSError, EOFError, zlib.error) as error:
        what = "is not a readable gzip file" if path.endswith(".gz") else "cannot be read"
        raise IngestError(
            f"{shown} {what} ({type(error).__name__}: {error}); deliver it again and rerun the date"
        ) from None


def header_mismatches(files: list[str], folder: str) -> dict[str, str]:
    """File name -> how its header differs, for the files whose first line is a header of
    other columns than the REES46 ones. Fails (one line) on a file that cannot be read."""
    found = {}
    for path in files:
        name = os.path.basename(path)
        first = _first_line(path, f"{folder.rstrip('/')}/{name}").rstrip(b"\r\n")
        try:
            line = first.decode("utf-8")
        except UnicodeDecodeError:
            continue  # not a header: the line is quarantined as non_utf8
        names = header_names(line)
        if names is not None and line.removeprefix("\ufeff") != HEADER:
            found[name] = header_difference(names)
    return found


def log_mismatched_headers(files: list[str], folder: str, log: Log) -> dict[str, str]:
    """:func:`header_mismatches`, each one logged."""
    mismatches = header_mismatches(files, folder)
    for name, difference in sorted(mismatches.items()):
        log(
            f"{folder.rstrip('/')}/{name}: the header is not the REES46 header ({difference}); "
            "every line of the file is quarantined as header_mismatch"
        )
    return mismatches


def read_lines(spark: SparkSession, files: list[str], folder: str, log: Log = print) -> DataFrame:
    """Every non-header line, with its source file named under ``folder`` (the logical path),
    and ``header_mismatch``: whether the line's file starts with a header of other columns.

    The logical path (``/Volumes/...`` as the job was given it), not the local one, so lineage
    reads the same on Databricks and locally and a rerun elsewhere writes the same rows.
    """
    mismatches = log_mismatched_headers(files, folder, log)
    file_name = F.col("_metadata.file_name")
    return (
        spark.read.text(files)
        .select(
            F.col("value").alias("raw_record"),
            F.concat(F.lit(f"{folder.rstrip('/')}/"), file_name).alias("source_file"),
            (file_name.isin(*mismatches) if mismatches else F.lit(False)).alias("header_mismatch"),
        )
        .where(~F.col("raw_record").isin(HEADER, f"\ufeff{HEADER}"))
    )


def read_landing(
    spark: SparkSession,
    files: dict[str, list[str]],
    landing_dir: str,
    stamps: dict[str, datetime],
    log: Log = print,
) -> DataFrame:
    """The lines of every date's files in one read: :func:`read_lines`' columns plus the
    ``ingest_date`` (the date folder a file is in) and ``ingested_at`` (``stamps`` of it).

    One scan for any number of dates: a union of one read per date makes a plan that grows
    with the range (its analysis alone took seconds per dozen dates).
    """
    folder = landing_dir.rstrip("/")
    mismatched = [
        f"{ds}/{name}"
        for ds, day_files in files.items()
        for name in log_mismatched_headers(day_files, f"{folder}/{ds}", log)
    ]
    text = spark.read.text([path for ds in files for path in files[ds]]).select(
        "value", F.col("_metadata.file_path").alias("file_path")
    )
    return dated_lines(text, folder, mismatched, stamps)


def dated_lines(
    text: DataFrame,
    landing_dir: str,
    mismatched: list[str],
    stamps: dict[str, datetime] | None = None,
) -> DataFrame:
    """Lines of landing files (``value``, ``file_path``: the file's full path or URI) as
    :func:`read_landing` returns them; the batch reader and the stream share it.

    ``mismatched``: ``<ds>/<name>`` of the files whose first line is a header of other columns.
    ``stamps``: ``ingested_at`` per date; None: the end of each date (what
    ``default_ingested_at`` gives), as the stream records every date it meets.
    """
    folder = landing_dir.rstrip("/")
    # Files are <landing>/<ds>/<name>: the folder of each file is its date.
    parts = F.split(F.col("file_path"), "/")
    day = F.element_at(parts, -2)
    name = F.element_at(parts, -1)
    relative = F.concat(day, F.lit("/"), name)
    if stamps is None:
        stamp = F.concat(F.date_add(day.cast("date"), 1).cast("string"), F.lit(" 00:00:00+00:00"))
        ingested_at = stamp.cast("timestamp")
    else:
        stamp_of_day = F.create_map(
            *(part for ds, value in stamps.items() for part in (F.lit(ds), utc_timestamp(value)))
        )
        ingested_at = F.element_at(stamp_of_day, day)
    return text.select(
        F.col("value").alias("raw_record"),
        F.concat(F.lit(f"{folder}/"), relative).alias("source_file"),
        (relative.isin(*mismatched) if mismatched else F.lit(False)).alias("header_mismatch"),
        day.cast("date").alias("ingest_date"),
        ingested_at.alias("ingested_at"),
    ).where(~F.col("raw_record").isin(HEADER, f"\ufeff{HEADER}"))


def _field(name: str) -> Column:
    """The raw text of a field; null when the field is empty or the line too short."""
    value = F.get(F.col("_fields"), RAW_COLUMNS.index(name))
    return F.when(value != "", value)


def _integer(name: str) -> Column:
    value = _field(name)
    return F.when(value.rlike(_INTEGER), value.try_cast("bigint"))


def _header_like() -> Column:
    """The line is a header (see :func:`header_names`): every field a name, one a REES46 one."""
    fields = F.split(F.regexp_replace("raw_record", "^\ufeff", ""), ",", -1)
    # A data line starts with a digit: the cheap test first (And short-circuits).
    return (
        F.col("raw_record").rlike("^\ufeff? *[A-Za-z_]")
        & F.forall(fields, lambda f: f.rlike(_NAME))
        & F.exists(fields, lambda f: F.lower(F.trim(f)).isin(*RAW_COLUMNS))
    )


def _reason() -> Column:
    """The first check a parsed line fails, in the documented order; null for a good line."""
    checks = (
        ("non_utf8", ~F.is_valid_utf8("raw_record")),
        ("empty_line", F.trim("raw_record") == ""),
        ("header_mismatch", F.col("_header_mismatch")),
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
    return F.lit(utc_text(value)).cast("timestamp")


def utc_text(value: datetime) -> str:
    instant = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return instant.isoformat(sep=" ")


def parse_lines(
    lines: DataFrame, ds: str | None = None, ingested_at: datetime | None = None
) -> DataFrame:
    """Typed event columns, ``reason`` (null for a good line) and the lineage columns.

    ``lines`` has ``raw_record`` and ``source_file``, and ``header_mismatch`` when read by
    :func:`read_lines` (absent: no file starts with a header of other columns). The ingest
    date and time are ``ds`` and ``ingested_at``, or the lines' own ``ingest_date`` and
    ``ingested_at`` columns (:func:`read_landing`).
    """
    dated = "ingest_date" in lines.columns
    if not dated and (ds is None or ingested_at is None):
        raise ValueError("parse_lines needs ds and ingested_at for lines without ingest_date")
    raw_time = _field("event_time")
    event_type = _field("event_type")
    price = _field("price")
    file_mismatch = F.col("header_mismatch") if "header_mismatch" in lines.columns else F.lit(False)
    typed = lines.withColumn("_fields", F.split("raw_record", ",", -1)).select(
        "raw_record",
        "source_file",
        "_fields",
        (file_mismatch | _header_like()).alias("_header_mismatch"),
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
        *(("ingested_at", "ingest_date") if dated else ()),
    )
    lineage = (
        ()
        if dated
        else (
            utc_timestamp(ingested_at).alias("ingested_at"),
            F.lit(date.fromisoformat(parse_ds(ds))).alias("ingest_date"),
        )
    )
    return typed.select("*", _reason().alias("reason"), *lineage).drop(
        "_fields", "_header_mismatch"
    )
