"""What a suite validates for one date: the day's rows, the bronze day profile, the checks.

A suite whose table or date partition is missing cannot be validated: that raises
:class:`QualityError` naming the table, the date and the job to run first.

**An empty day is a result, not an error.** A date whose ingest is recorded in
``bronze.events_ingest_log`` (see ``clickstream/pipeline/ingest.py``) but landed no bronze row
(its files were header-only or empty, or every line was quarantined) is validated: the blocking
row-count expectation fails with the observed ``0 rows`` and why (e.g. ``the 1 file(s) of the
date hold no rows: empty or header only``), the volume ratio fails too when there is history,
and every other check on the day's rows is *skipped* ("no rows to check"): on no rows they
would pass vacuously, or fail on a null minimum. The silver and feature suites of such a date
do the same when their own partition is empty. A date with no bronze row, no quarantined line
and no ingest record was never ingested: that stays a :class:`QualityError`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    SILVER_EVENTS,
    USER_FEATURES,
)
from clickstream.core.jobs import JobError
from clickstream.core.schema import parse_ds
from clickstream.pipeline.ingest import BRONZE_INGEST_LOG
from clickstream.quality.checks import (
    LATE_TOLERANCE_HOURS,
    SUITE_ROWS,
    SUITES,
    VOLUME_LOOKBACK_DAYS,
    VOLUME_MIN_HISTORY_DAYS,
    Check,
    bronze_checks,
    for_empty_day,
    suite_checks,
)


class QualityError(JobError):
    """The data to validate is not there (a table or date partition is missing)."""


@dataclass
class SuiteInput:
    """What one suite validates: the day's rows (persisted), its profile and its checks."""

    suite: str
    description: str
    frames: dict[str, DataFrame]
    checks: list[Check]


def _lit_date(value: date):
    return F.lit(value.isoformat()).cast("date")


def _require_table(spark: SparkSession, name: str, ds: str, run_first: str) -> None:
    if not spark.catalog.tableExists(name):
        raise QualityError(f"{name} does not exist, nothing to validate for {ds}: {run_first}")


def day_profile(
    spark: SparkSession,
    *,
    ds: str,
    rows: int,
    catalog: str,
    bronze_schema: str = "bronze",
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
) -> dict[str, Any]:
    """Quarantine count and share of ``ds``, and its volume against the previous days.

    The history is the bronze row count of each of the ``volume_lookback_days`` dates before
    ``ds`` that has rows (partition-pruned); ``volume_ratio`` is null with too little of it.
    """
    if volume_lookback_days < 1:
        raise ValueError(f"--volume-lookback-days must be at least 1, got {volume_lookback_days}")
    day = date.fromisoformat(parse_ds(ds))
    quarantine = BRONZE_QUARANTINE.name(catalog, bronze_schema)
    _require_table(spark, quarantine, ds, f"run ingest_events for {ds} first")
    quarantined = spark.table(quarantine).where(F.col("ingest_date") == _lit_date(day)).count()
    first = day - timedelta(days=volume_lookback_days)
    history = [
        int(r["count"])
        for r in spark.table(BRONZE_EVENTS.name(catalog, bronze_schema))
        .where(F.col("ingest_date").between(_lit_date(first), _lit_date(day - timedelta(days=1))))
        .groupBy("ingest_date")
        .count()
        .collect()
    ]
    median = float(statistics.median(history)) if history else None
    enough = len(history) >= VOLUME_MIN_HISTORY_DAYS
    total = rows + quarantined
    return {
        "rows": rows,
        "quarantined": quarantined,
        "quarantine_share": quarantined / total if total else 0.0,
        "history_days": len(history),
        "history_median": median,
        "volume_ratio": rows / median if enough and median else None,
    }


_PROFILE_SCHEMA = (
    "rows bigint, quarantined bigint, quarantine_share double, history_days int, "
    "history_median double, volume_ratio double"
)


def profile_frame(spark: SparkSession, profile: Mapping[str, Any]) -> DataFrame:
    names = [part.split()[0] for part in _PROFILE_SCHEMA.split(", ")]
    return spark.createDataFrame([tuple(profile[n] for n in names)], _PROFILE_SCHEMA)


def ingest_record(
    spark: SparkSession, *, ds: str, catalog: str, bronze_schema: str = "bronze"
) -> dict[str, Any] | None:
    """The ``bronze.events_ingest_log`` row of ``ds`` (its last verified ingest), or None."""
    name = BRONZE_INGEST_LOG.name(catalog, bronze_schema)
    if not spark.catalog.tableExists(name):
        return None
    day = date.fromisoformat(parse_ds(ds))
    row = spark.table(name).where(F.col("ingest_date") == _lit_date(day)).first()
    return row.asDict() if row else None


def _empty_bronze_day(profile: Mapping[str, Any], record: Mapping[str, Any] | None) -> str:
    if profile["quarantined"]:
        return f"every one of the {profile['quarantined']} lines of the date was quarantined"
    files = record["files"] if record else "?"
    return f"the {files} file(s) of the date hold no rows: empty or header only"


def _day_rows(spark, table: str, column: str, ds: str, run_first: str) -> tuple[DataFrame, int]:
    _require_table(spark, table, ds, run_first)
    rows = spark.table(table).where(F.col(column) == _lit_date(date.fromisoformat(ds))).persist()
    return rows, rows.count()


def load_suite(
    spark: SparkSession,
    suite: str,
    *,
    ds: str,
    catalog: str,
    bronze_schema: str = "bronze",
    silver_schema: str = "silver",
    late_tolerance_hours: float = LATE_TOLERANCE_HOURS,
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
) -> SuiteInput:
    """The frames and checks of ``suite`` for ``ds``; fails when there is nothing to validate.

    The day's rows are persisted (every expectation scans them); the caller unpersists them.
    """
    ds = parse_ds(ds)
    if suite not in SUITE_ROWS:
        raise ValueError(f"unknown suite {suite!r}: expected one of {', '.join(SUITES)}")
    # The tables are named through their contracts here, one by one, because
    # local/docs/architecture.py reads what validate_data.py reads from these calls.
    if suite == "bronze_events":
        return _load_bronze(
            spark,
            BRONZE_EVENTS.name(catalog, bronze_schema),
            ds=ds,
            catalog=catalog,
            bronze_schema=bronze_schema,
            late_tolerance_hours=late_tolerance_hours,
            volume_lookback_days=volume_lookback_days,
        )
    if suite == "silver_events":
        table = SILVER_EVENTS.name(catalog, silver_schema)
    else:
        table = USER_FEATURES.name(catalog, silver_schema)
    return _load_built(spark, suite, table, ds=ds, catalog=catalog, bronze_schema=bronze_schema)


def _load_bronze(
    spark: SparkSession,
    table: str,
    *,
    ds: str,
    catalog: str,
    bronze_schema: str,
    late_tolerance_hours: float,
    volume_lookback_days: int,
) -> SuiteInput:
    """The bronze_events suite: the day's rows, and its day profile for the volume and the
    quarantine checks."""
    run_first = f"run ingest_events for {ds} first"
    rows, count = _day_rows(spark, table, "ingest_date", ds, run_first)
    record = None
    try:
        profile = day_profile(
            spark,
            ds=ds,
            rows=count,
            catalog=catalog,
            bronze_schema=bronze_schema,
            volume_lookback_days=volume_lookback_days,
        )
        if count == 0:
            record = ingest_record(spark, ds=ds, catalog=catalog, bronze_schema=bronze_schema)
    except BaseException:
        rows.unpersist()
        raise
    if count == 0 and profile["quarantined"] == 0 and record is None:
        rows.unpersist()
        raise QualityError(
            f"{table} has no rows for ingest_date {ds} (nor its quarantine) and "
            f"{BRONZE_INGEST_LOG.name(catalog, bronze_schema)} records no ingest of it: "
            f"{run_first}"
        )
    checks = bronze_checks(
        ds,
        profile,
        late_tolerance_hours=late_tolerance_hours,
        volume_lookback_days=volume_lookback_days,
    )
    if count == 0:
        checks = for_empty_day(checks, _empty_bronze_day(profile, record))
    return SuiteInput(
        "bronze_events",
        f"{count} rows of {table} with ingest_date {ds} ({profile['quarantined']} quarantined)",
        {"rows": rows, "profile": profile_frame(spark, profile)},
        checks,
    )


def _load_built(
    spark: SparkSession, suite: str, table: str, *, ds: str, catalog: str, bronze_schema: str
) -> SuiteInput:
    """A suite of a table built from bronze (silver events, user features): the day's rows."""
    _, column, job = SUITE_ROWS[suite]
    run_first = f"run {job} for {ds} first"
    checks = suite_checks(suite, ds)
    rows, count = _day_rows(spark, table, column, ds, run_first)
    if count == 0:
        # Empty because the day was (an ingest with 0 bronze rows), or because the job did
        # not run for it (then there is nothing to validate yet).
        try:
            record = ingest_record(spark, ds=ds, catalog=catalog, bronze_schema=bronze_schema)
        except BaseException:
            rows.unpersist()
            raise
        if record is None or record["bronze"] > 0:
            rows.unpersist()
            raise QualityError(f"{table} has no rows for {column} {ds}: {run_first}")
        checks = for_empty_day(
            checks,
            f"an empty day: ingest_events landed 0 rows in bronze for {ds} "
            f"({record['files']} file(s), {record['rows_in']} lines in)",
        )
    return SuiteInput(suite, f"{count} rows of {table} with {column} {ds}", {"rows": rows}, checks)
