"""Data quality of one logical date with Great Expectations: suites, results table, summary.

Each suite is a list of :class:`Check` (plain data) turned into Great Expectations 1.x
expectations and run through a GE Spark datasource on the Spark DataFrame of the day (an
ephemeral context, a dataframe asset, a whole-dataframe batch definition and
``batch_parameters={"dataframe": df}``): the metrics are Spark aggregations over the day, nothing
is collected to the driver but GE's few example values. Metrics that are not a property of a
row (the day's volume against recent days, the share of quarantined lines) are validated the
same way on a one-row *day profile* DataFrame with ``ExpectColumnMaxToBeBetween``: on one row
the column's max is the value itself, so GE reports it as ``observed_value`` whether the check
passes or fails.

Severity uses GE's own field (``severity="critical"`` for blocking, ``"warning"``) and is read
back from each result's expectation configuration.

Thresholds are the module constants below (CLI options where named); ``sev.`` is the severity
(block: fails the gate, warn: reported only).

``bronze_events``: the ``bronze.events`` rows with ``ingest_date = ds``; the last three run on
the day profile.

============================  =====  ======================  =================================
expectation (column)          sev.   threshold               why
============================  =====  ======================  =================================
columns match set             block  the contract's columns  later jobs read them by name
row count                     block  >= 1 row                an empty day (header-only or
                                                             0-byte files, or every line
                                                             quarantined): nothing to serve
not null (event_time,         block  no null                 an event without them cannot be
event_type, product_id,                                      placed in time, typed or keyed
user_id)
in set (event_type)           block  the 4 REES46 types      features count each type; an
                                                             unknown one would be lost
between (price)               warn   0..``PRICE_MAX``        an absurd price skews spend;
                                     (100000), every row     worth a look, not a stop
between (event_time)          warn   [ds - ``--late-``       late or early events land in
                                     ``tolerance-hours``     other event dates: a few are
                                     (6 h), ds + 1 day) for  normal (late sessions), many
                                     ``EVENT_TIME_MOSTLY``   mean a wrong or shifted file
                                     (99%) of rows
compound unique (the 9        warn   <= ``DUPLICATE_MAX_``   silver removes duplicates; many
source fields)                       ``SHARE`` (1%) of rows  mean a file delivered twice or
                                     in a duplicate group    a tracker retry storm
max between (volume_ratio)    block  ``VOLUME_RATIO_MIN``    a truncated or doubled file.
                                     (0.2)..``_MAX`` (5) x   Skipped (not failed) with fewer
                                     the median of the       than ``VOLUME_MIN_HISTORY_DAYS``
                                     previous ``--volume-``  (3) days of history
                                     ``lookback-days`` (7)
max between                   block  <= ``QUARANTINE_``      quarantined / (bronze +
(quarantine_share)                   ``BLOCKING`` (0.05)     quarantined) lines of ds: a
                                                             broken export loses data
max between                   warn   <= ``QUARANTINE_``      a few bad lines are normal,
(quarantine_share)                   ``WARNING`` (0.01)      more deserve a look
============================  =====  ======================  =================================

``silver_events``: the ``silver.events`` rows with ``event_date = ds``.

============================  =====  ======================  =================================
expectation (column)          sev.   threshold               why
============================  =====  ======================  =================================
columns match set             block  the contract's columns  later jobs read them by name
row count                     block  >= 1 row                an empty day reached silver
unique (event_id)             block  unique in the date      the MERGE key; a duplicate
                                                             double-counts in features
not null (event_id,           block  no null                 keys of every downstream join
event_time, event_type,                                      and aggregation
product_id, user_id)
in set (event_type)           block  the 4 REES46 types      as in bronze
============================  =====  ======================  =================================

``user_features``: the ``silver.user_features`` rows with ``feature_date = ds``.

============================  =====  ======================  =================================
expectation (column)          sev.   threshold               why
============================  =====  ======================  =================================
columns match set             block  the contract's columns  training and serving read them
row count                     block  >= 1 row                no user active in 30 days
unique (user_id)              block  one row per user        the table's key (with the date)
not null (user_id,            block  no null                 the key of every lookup
feature_date)
min between (each count,      block  >= 0                    a negative count is a bug in the
spend, distinct and                                          feature job
session column, 1/7/30 d)
min between (days_since_*,    warn   >= 0                    an event after the feature date
tenure_days)                                                 leaked in, or upstream clocks
============================  =====  ======================  =================================

A suite whose table or date partition is missing cannot be validated: that raises
:class:`QualityError` naming the table, the date and the job to run first. Failed expectations
never raise: the job reports them (``dq_results`` rows, the JSON summary, the HTML page) and the
Airflow gate task decides from the summary's ``success``.

**An empty day is a result, not an error.** A date whose ingest is recorded in
``bronze.events_ingest_log`` (see ``clickstream/ingest.py``) but landed no bronze row (its files
were header-only or empty, or every line was quarantined) is validated: the blocking row-count
expectation fails with the observed ``0 rows`` and why (e.g. ``the 1 file(s) of the date hold no
rows: empty or header only``), the volume ratio fails too when there is history, and every
other check on the day's rows is *skipped* ("no rows to check"): on no rows they would pass
vacuously, or fail on a null minimum. The silver and feature suites of such a date do the same
when their own partition is empty. A date with no bronze row, no quarantined line and no
ingest record was never ingested: that stays a :class:`QualityError`.

``<catalog>.<monitoring>.dq_results`` holds one row per expectation and (ds, suite); each run
replaces the rows of its ds and suites (Delta ``replaceWhere``), and no column depends on the
wall clock, so a rerun of a date leaves the same rows (there is no ``validated_at`` column: the
Delta history has the write time, the run id is ``airflow_run_id``). The few example values
in ``observed_value``/``details`` are GE's sample of the first unexpected rows Spark returns
(``partial_unexpected_count`` = ``EXAMPLES``): the same for the same files.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    RECENCY_FEATURES,
    SILVER_EVENTS,
    USER_FEATURES,
    WINDOW_FEATURES,
    WINDOWS,
    Column,
    Contract,
    write_partition,
)
from clickstream.core.jobs import JobError
from clickstream.core.schema import EVENT_TYPES, RAW_COLUMNS, parse_ds
from clickstream.core.volumes import local_path
from clickstream.pipeline.ingest import BRONZE_INGEST_LOG
from clickstream.quality.report import render

SUITES: tuple[str, ...] = ("bronze_events", "silver_events", "user_features")
BLOCKING, WARNING = "blocking", "warning"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

PRICE_MAX = 100_000
LATE_TOLERANCE_HOURS = 6.0
EVENT_TIME_MOSTLY = 0.99
DUPLICATE_MAX_SHARE = 0.01
VOLUME_LOOKBACK_DAYS = 7
VOLUME_MIN_HISTORY_DAYS = 3
VOLUME_RATIO_MIN = 0.2
VOLUME_RATIO_MAX = 5.0
QUARANTINE_BLOCKING = 0.05
QUARANTINE_WARNING = 0.01
EXAMPLES = 5  # unexpected values GE samples per expectation (BASIC result format)

# GE's FailureSeverity values for ours; "info" is not used.
_GX_SEVERITY = {BLOCKING: "critical", WARNING: "warning"}
_OUR_SEVERITY = {v: k for k, v in _GX_SEVERITY.items()}

# Count-like features, never negative (the ratios and means are nullable doubles, not checked).
COUNT_FEATURES: tuple[str, ...] = tuple(
    f"{name}_{w}d" for w in WINDOWS for name, kind, _ in WINDOW_FEATURES if kind != "double"
)
RECENCY_COLUMNS: tuple[str, ...] = tuple(name for name, _ in RECENCY_FEATURES)

DQ_RESULTS = Contract(
    schema="monitoring",
    table="dq_results",
    comment="Great Expectations results: one row per expectation, suite and logical date",
    columns=(
        Column("ds", "date", False, "logical date validated"),
        Column("suite", "string", False, "bronze_events | silver_events | user_features"),
        Column("expectation", "string", False, "Great Expectations expectation type"),
        Column("column", "string", True, "column(s) checked; null for table-level ones"),
        Column("severity", "string", False, "blocking | warning"),
        Column("status", "string", False, "passed | failed | skipped"),
        Column("success", "boolean", True, "null when skipped (not evaluated)"),
        Column("observed_value", "string", True, "short human-readable observation"),
        Column("expected", "string", False, "short human-readable expectation"),
        Column("details", "string", False, "JSON: expectation kwargs and GE result"),
        Column("airflow_run_id", "string", False),
    ),
    partitioned_by=("ds",),
)


class QualityError(JobError):
    """The data to validate is not there (a table or date partition is missing)."""


@dataclass(frozen=True)
class Check:
    """One expectation of a suite, as plain data.

    ``expectation`` is the class name in ``great_expectations.expectations``; ``target`` is
    the frame it runs on (``rows``: the day's rows; ``profile``: the one-row day profile);
    ``label`` names an aggregate observed value; ``skipped`` says why it is not evaluated.
    """

    expectation: str
    kwargs: Mapping[str, Any]
    severity: str
    expected: str
    target: str = "rows"
    label: str = ""
    skipped: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def column(self) -> str | None:
        if "column" in self.kwargs:
            return str(self.kwargs["column"])
        if "column_list" in self.kwargs:
            return ",".join(self.kwargs["column_list"])
        return None


@dataclass(frozen=True)
class Outcome:
    """The result of one check, as reported everywhere (table row, summary, HTML)."""

    suite: str
    expectation: str  # GE type, e.g. expect_column_values_to_not_be_null
    column: str | None
    severity: str
    status: str
    observed: str
    expected: str
    details: dict

    @property
    def success(self) -> bool | None:
        return None if self.status == SKIPPED else self.status == PASSED

    def entry(self) -> dict:
        """The summary's shape of a failed check."""
        return {
            "suite": self.suite,
            "expectation": self.expectation,
            "column": self.column,
            "observed": self.observed,
            "expected": self.expected,
        }


@dataclass
class SuiteInput:
    """What one suite validates: the day's rows (persisted), its profile and its checks."""

    suite: str
    description: str
    frames: dict[str, DataFrame]
    checks: list[Check]


# --------------------------------------------------------------------------- the suites


def _schema_check(contract: Contract) -> Check:
    return Check(
        "ExpectTableColumnsToMatchSet",
        {"column_set": contract.names, "exact_match": True},
        BLOCKING,
        f"exactly the {len(contract.names)} columns of the {contract.schema}.{contract.table} "
        "contract",
    )


def _row_count(expected: str) -> Check:
    """Blocking: the day has at least one row (a table-level check on the day's rows)."""
    return Check(
        "ExpectTableRowCountToBeBetween", {"min_value": 1}, BLOCKING, expected, label="rows"
    )


def _not_null(columns: Iterable[str]) -> list[Check]:
    return [
        Check("ExpectColumnValuesToNotBeNull", {"column": c}, BLOCKING, "no null") for c in columns
    ]


def _event_types() -> Check:
    return Check(
        "ExpectColumnValuesToBeInSet",
        {"column": "event_type", "value_set": list(EVENT_TYPES)},
        BLOCKING,
        "in {" + ", ".join(EVENT_TYPES) + "}",
    )


def _utc(value: date, hours: float = 0.0) -> datetime:
    return datetime.combine(value, time.min, tzinfo=UTC) + timedelta(hours=hours)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _share(value: float) -> str:
    return f"{value:g}"


def bronze_checks(
    ds: str,
    profile: Mapping[str, Any],
    *,
    late_tolerance_hours: float = LATE_TOLERANCE_HOURS,
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
) -> list[Check]:
    """The bronze_events suite of ``ds``; ``profile`` is the day profile (see ``day_profile``)."""
    day = date.fromisoformat(parse_ds(ds))
    earliest, end = _utc(day, -late_tolerance_hours), _utc(day + timedelta(days=1))
    history = profile["history_days"]
    volume_skip = (
        f"insufficient history: {history} day(s) of bronze in the previous "
        f"{volume_lookback_days}, at least {VOLUME_MIN_HISTORY_DAYS} needed"
        if history < VOLUME_MIN_HISTORY_DAYS
        else ""
    )
    volume_context = {k: profile[k] for k in ("rows", "history_days", "history_median")}
    quarantine_context = {k: profile[k] for k in ("rows", "quarantined")}
    return [
        _schema_check(BRONZE_EVENTS),
        _row_count(">= 1 row in bronze.events for the date"),
        *_not_null(("event_time", "event_type", "product_id", "user_id")),
        _event_types(),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "price", "min_value": 0, "max_value": PRICE_MAX},
            WARNING,
            f"0 <= price <= {PRICE_MAX} for every row",
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {
                "column": "event_time",
                "min_value": earliest,
                "max_value": end,
                "strict_max": True,
                "mostly": EVENT_TIME_MOSTLY,
            },
            WARNING,
            f"in [{_when(earliest)}, {_when(end)}) UTC for >= {EVENT_TIME_MOSTLY:.0%} of rows",
        ),
        Check(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": list(RAW_COLUMNS), "mostly": 1 - DUPLICATE_MAX_SHARE},
            WARNING,
            f"<= {DUPLICATE_MAX_SHARE:.0%} of rows duplicated (same 9 source fields)",
        ),
        Check(
            "ExpectColumnMaxToBeBetween",
            {
                "column": "volume_ratio",
                "min_value": VOLUME_RATIO_MIN,
                "max_value": VOLUME_RATIO_MAX,
            },
            BLOCKING,
            f"{_share(VOLUME_RATIO_MIN)} <= ratio <= {_share(VOLUME_RATIO_MAX)} (rows / median "
            f"of the previous {volume_lookback_days} days)",
            target="profile",
            label="volume ratio",
            skipped=volume_skip,
            context=volume_context,
        ),
        Check(
            "ExpectColumnMaxToBeBetween",
            {"column": "quarantine_share", "min_value": 0, "max_value": QUARANTINE_BLOCKING},
            BLOCKING,
            f"<= {_share(QUARANTINE_BLOCKING)}",
            target="profile",
            label="quarantine share",
            context=quarantine_context,
        ),
        Check(
            "ExpectColumnMaxToBeBetween",
            {"column": "quarantine_share", "min_value": 0, "max_value": QUARANTINE_WARNING},
            WARNING,
            f"<= {_share(QUARANTINE_WARNING)}",
            target="profile",
            label="quarantine share",
            context=quarantine_context,
        ),
    ]


def silver_checks() -> list[Check]:
    return [
        _schema_check(SILVER_EVENTS),
        _row_count(">= 1 event in the event date"),
        Check(
            "ExpectColumnValuesToBeUnique",
            {"column": "event_id"},
            BLOCKING,
            "unique in the event date",
        ),
        *_not_null(("event_id", "event_time", "event_type", "product_id", "user_id")),
        _event_types(),
    ]


def user_feature_checks() -> list[Check]:
    return [
        _schema_check(USER_FEATURES),
        _row_count(">= 1 user in the feature date"),
        Check("ExpectColumnValuesToBeUnique", {"column": "user_id"}, BLOCKING, "one row per user"),
        *_not_null(("user_id", "feature_date")),
        *(
            Check(
                "ExpectColumnMinToBeBetween",
                {"column": c, "min_value": 0},
                BLOCKING,
                ">= 0",
                label="min",
            )
            for c in COUNT_FEATURES
        ),
        *(
            Check(
                "ExpectColumnMinToBeBetween",
                {"column": c, "min_value": 0},
                WARNING,
                ">= 0",
                label="min",
            )
            for c in RECENCY_COLUMNS
        ),
    ]


# --------------------------------------------------------------------------- the day's data


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


# Checks that still mean something on a day without rows.
_TABLE_CHECKS = ("ExpectTableColumnsToMatchSet", "ExpectTableRowCountToBeBetween")


def for_empty_day(checks: list[Check], why: str) -> list[Check]:
    """``checks`` for a day without rows: the row count says ``why``; the other checks of the
    day's rows are skipped (vacuous passes, or failures on a null minimum, would mislead)."""
    marked = []
    for check in checks:
        if check.label == "rows":
            check = replace(check, context={**check.context, "why": why})
        elif check.target == "rows" and check.expectation not in _TABLE_CHECKS:
            check = replace(check, skipped=check.skipped or "no rows to check")
        marked.append(check)
    return marked


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
    if suite == "bronze_events":
        table = BRONZE_EVENTS.name(catalog, bronze_schema)
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
            suite,
            f"{count} rows of {table} with ingest_date {ds} ({profile['quarantined']} quarantined)",
            {"rows": rows, "profile": profile_frame(spark, profile)},
            checks,
        )
    if suite == "silver_events":
        table, column, job = (
            SILVER_EVENTS.name(catalog, silver_schema),
            "event_date",
            "build_silver_events",
        )
        checks = silver_checks()
    elif suite == "user_features":
        table, column, job = (
            USER_FEATURES.name(catalog, silver_schema),
            "feature_date",
            "build_user_features",
        )
        checks = user_feature_checks()
    else:
        raise ValueError(f"unknown suite {suite!r}: expected one of {', '.join(SUITES)}")
    run_first = f"run {job} for {ds} first"
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


# --------------------------------------------------------------------------- running GE


def _context():
    """An in-memory GE context and its Spark datasource (progress bars off: job logs)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # persist=False: the caller persists the day's rows once and unpersists them afterwards;
    # GE's own persist() would leave them cached for the rest of a warm driver's life.
    return context, context.data_sources.add_spark(name="spark", persist=False)


def _expectation(check: Check, index: int):
    import great_expectations.expectations as gxe

    cls = getattr(gxe, check.expectation)
    return cls(**check.kwargs, severity=_GX_SEVERITY[check.severity], meta={"check": index})


def _examples(result: Mapping[str, Any]) -> str:
    values = list(dict.fromkeys(map(_hashable, result.get("partial_unexpected_list") or [])))
    shown = []
    for value in values[:3]:
        text = repr(value) if isinstance(value, str) else str(value)
        shown.append(text if len(text) <= 40 else text[:37] + "...")
    return ", e.g. " + ", ".join(shown) if shown else ""


def _hashable(value: Any) -> Any:
    """A sampled value as a dict key (compound checks sample rows as dicts)."""
    if isinstance(value, Mapping):
        return tuple(value.values())
    return tuple(value) if isinstance(value, list) else value


_NOUNS = {
    "expect_column_values_to_not_be_null": "null",
    "expect_column_values_to_be_in_set": "not in the set",
    "expect_column_values_to_be_between": "out of range",
    "expect_column_values_to_be_unique": "duplicated",
    "expect_compound_columns_to_be_unique": "duplicated",
}


def _number(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _observed(check: Check, kind: str, result: Mapping[str, Any], error: str) -> str:
    if error:
        return f"error: {error}"
    if kind == "expect_table_columns_to_match_set":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = [f"{k}: {', '.join(map(str, v))}" for k, v in sorted(mismatched.items()) if v]
        return "; ".join(parts) if parts else f"{len(result.get('observed_value') or [])} columns"
    if "unexpected_count" in result:
        n, bad = result.get("element_count") or 0, result.get("unexpected_count") or 0
        noun = "null" if kind.endswith("not_be_null") else _NOUNS.get(kind, "unexpected")
        share = f" ({bad / n:.2%})" if n else ""
        examples = _examples(result) if bad and noun != "null" else ""
        return f"{bad} of {n} rows {noun}{share}{examples}"
    value = result.get("observed_value")
    if check.label == "rows":
        why = check.context.get("why")
        return f"{value} rows ({why})" if why and not value else f"{value} rows"
    text = f"{check.label or 'observed'} {_number(value)}"
    if check.label == "volume ratio":
        ctx = check.context
        text += f" ({ctx['rows']} rows / median {_number(ctx['history_median'])} of "
        text += f"{ctx['history_days']} days)"
    elif check.label == "quarantine share":
        ctx = check.context
        text += f" ({ctx['quarantined']} of {ctx['rows'] + ctx['quarantined']} lines)"
    return text


def _error(exception_info: Any) -> str:
    """GE's exception message, from the flat or the per-metric form of ``exception_info``."""
    if not isinstance(exception_info, Mapping):
        return ""
    infos = (
        [exception_info]
        if "raised_exception" in exception_info
        else [v for v in exception_info.values() if isinstance(v, Mapping)]
    )
    for info in infos:
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "exception").splitlines()[0][:300]
    return ""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _details(check: Check, result: Mapping[str, Any], error: str) -> dict:
    kept = (
        "element_count",
        "unexpected_count",
        "unexpected_percent",
        "missing_count",
        "observed_value",
        "details",
        "partial_unexpected_list",
    )
    details = {
        "kwargs": dict(check.kwargs),
        "result": {k: result[k] for k in kept if k in result},
    }
    if check.context:
        details["context"] = dict(check.context)
    if check.skipped:
        details["skipped"] = check.skipped
    if error:
        details["error"] = error
    return _jsonable(details)


def evaluate(suite: str, checks: list[Check], frames: Mapping[str, DataFrame]) -> list[Outcome]:
    """Run ``checks`` through GE on ``frames`` (by target); one Outcome per check, in order."""
    import great_expectations as gx

    context, datasource = _context()
    expectations = {i: _expectation(check, i) for i, check in enumerate(checks)}
    results: dict[int, Any] = {}
    for target in sorted({c.target for c in checks if not c.skipped}):
        name = f"{suite}.{target}"
        asset = datasource.add_dataframe_asset(name=name)
        batch = asset.add_batch_definition_whole_dataframe(name)
        chosen = [
            expectations[i] for i, c in enumerate(checks) if c.target == target and not c.skipped
        ]
        gx_suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=chosen))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
        )
        validation = definition.run(
            batch_parameters={"dataframe": frames[target]},
            # BASIC: counts and a few sampled unexpected values; SUMMARY would add a group-by
            # job per expectation for partial_unexpected_counts, which is not reported.
            result_format={"result_format": "BASIC", "partial_unexpected_count": EXAMPLES},
        )
        for result in validation.results:
            results[int(result.expectation_config.meta["check"])] = result
    outcomes = []
    for i, check in enumerate(checks):
        kind = expectations[i].expectation_type
        if check.skipped:
            outcomes.append(
                Outcome(
                    suite,
                    kind,
                    check.column,
                    check.severity,
                    SKIPPED,
                    check.skipped,
                    check.expected,
                    _details(check, {}, ""),
                )
            )
            continue
        result = results[i]
        config = result.expectation_config
        severity = _OUR_SEVERITY[getattr(config.severity, "value", config.severity)]
        error = _error(result.exception_info)
        body = result.result or {}
        outcomes.append(
            Outcome(
                suite,
                config.type,
                check.column,
                severity,
                PASSED if result.success and not error else FAILED,
                _observed(check, config.type, body, error),
                check.expected,
                _details(check, body, error),
            )
        )
    return outcomes


# --------------------------------------------------------------------------- the job


def summarise(ds: str, suites: list[str], outcomes: list[Outcome], report: str, table: str) -> dict:
    """The JSON summary the Airflow gate reads (keys fixed: see the module docstring)."""
    failed = [o for o in outcomes if o.status == FAILED]
    blocking = [o.entry() for o in failed if o.severity == BLOCKING]
    warnings = [o.entry() for o in failed if o.severity == WARNING]
    return {
        "ds": ds,
        "suites": list(suites),
        "success": not blocking,
        "blocking_failures": blocking,
        "warnings": warnings,
        "counts": {
            "evaluated": sum(o.status != SKIPPED for o in outcomes),
            "passed": sum(o.status == PASSED for o in outcomes),
            "blocking_failed": len(blocking),
            "warning_failed": len(warnings),
            "skipped": sum(o.status == SKIPPED for o in outcomes),
        },
        "report": report,
        "table": table,
    }


def status_text(summary: Mapping[str, Any]) -> str:
    if not summary["success"]:
        return "FAILED (blocking)"
    return "PASSED with warnings" if summary["warnings"] else "PASSED"


def results_frame(
    spark: SparkSession, ds: str, outcomes: list[Outcome], airflow_run_id: str
) -> DataFrame:
    day = date.fromisoformat(parse_ds(ds))
    rows = [
        (
            day,
            o.suite,
            o.expectation,
            o.column,
            o.severity,
            o.status,
            o.success,
            o.observed,
            o.expected,
            json.dumps(o.details, sort_keys=True),
            airflow_run_id,
        )
        for o in outcomes
    ]
    schema = ", ".join(f"`{c.name}` {c.type}" for c in DQ_RESULTS.columns)
    return spark.createDataFrame(rows, schema)


def write_results(
    spark: SparkSession,
    ds: str,
    suites: list[str],
    outcomes: list[Outcome],
    *,
    catalog: str,
    airflow_run_id: str,
    monitoring_schema: str = "monitoring",
) -> str:
    """Replace the rows of (ds, suites) in ``dq_results``: a rerun leaves the same rows."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown:  # suite names end up in the replaceWhere predicate
        raise ValueError(f"unknown suite(s): {', '.join(unknown)}")
    predicate = f"ds = DATE'{parse_ds(ds)}' AND suite IN ({', '.join(repr(s) for s in suites)})"
    frame = results_frame(spark, ds, outcomes, airflow_run_id)
    return write_partition(spark, frame, DQ_RESULTS, catalog, predicate, monitoring_schema)


def validate(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    suites: list[str],
    bronze_schema: str = "bronze",
    silver_schema: str = "silver",
    late_tolerance_hours: float = LATE_TOLERANCE_HOURS,
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
    log=print,
) -> list[Outcome]:
    """Load every suite first (so a missing input fails before anything runs), then run them."""
    ds = parse_ds(ds)
    if not suites:
        raise ValueError("give at least one --suite")
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}: expected {', '.join(SUITES)}")
    if late_tolerance_hours < 0:
        raise ValueError(f"--late-tolerance-hours must be >= 0, got {late_tolerance_hours}")
    if volume_lookback_days < 1:
        raise ValueError(f"--volume-lookback-days must be at least 1, got {volume_lookback_days}")
    inputs: list[SuiteInput] = []
    try:
        for suite in dict.fromkeys(suites):
            inputs.append(
                load_suite(
                    spark,
                    suite,
                    ds=ds,
                    catalog=catalog,
                    bronze_schema=bronze_schema,
                    silver_schema=silver_schema,
                    late_tolerance_hours=late_tolerance_hours,
                    volume_lookback_days=volume_lookback_days,
                )
            )
        outcomes: list[Outcome] = []
        for item in inputs:
            log(f"{ds}: {item.suite}: {len(item.checks)} expectations on {item.description}")
            outcomes += evaluate(item.suite, item.checks, item.frames)
        return outcomes
    finally:
        for item in inputs:
            item.frames["rows"].unpersist()


def report_rows(outcomes: list[Outcome]) -> list[dict]:
    return [
        {
            "suite": o.suite,
            "expectation": o.expectation,
            "column": o.column,
            "severity": o.severity,
            "status": o.status,
            "observed": o.observed,
            "expected": o.expected,
        }
        for o in outcomes
    ]


def publish(output: str, summary: Mapping[str, Any], outcomes: list[Outcome]) -> tuple[str, str]:
    """Write ``<output>.html`` then ``<output>.json`` (Volume paths mapped locally)."""
    html_path, json_path = local_path(f"{output}.html"), local_path(f"{output}.json")
    os.makedirs(os.path.dirname(html_path) or ".", exist_ok=True)
    page = render(
        ds=summary["ds"],
        suites=summary["suites"],
        status=status_text(summary),
        counts=summary["counts"],
        rows=report_rows(outcomes),
        table=summary["table"],
    )
    with open(html_path, "w", encoding="utf-8") as handle:
        handle.write(page)
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=False)
        handle.write("\n")
    return f"{output}.html", f"{output}.json"


def run(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    suites: list[str],
    output: str,
    bronze_schema: str = "bronze",
    silver_schema: str = "silver",
    monitoring_schema: str = "monitoring",
    airflow_run_id: str = "manual",
    late_tolerance_hours: float = LATE_TOLERANCE_HOURS,
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
    log=print,
) -> tuple[dict, list[Outcome]]:
    """Validate, replace the (ds, suites) rows of ``dq_results``, write the report and summary.

    Returns the summary and the outcomes; never raises for a failed expectation.
    """
    ds = parse_ds(ds)
    if not output or output.endswith("/"):
        raise ValueError(f"--output must be a path prefix (no trailing /), got {output!r}")
    suites = list(dict.fromkeys(suites))
    outcomes = validate(
        spark,
        ds=ds,
        catalog=catalog,
        suites=suites,
        bronze_schema=bronze_schema,
        silver_schema=silver_schema,
        late_tolerance_hours=late_tolerance_hours,
        volume_lookback_days=volume_lookback_days,
        log=log,
    )
    table = write_results(
        spark,
        ds,
        suites,
        outcomes,
        catalog=catalog,
        airflow_run_id=airflow_run_id,
        monitoring_schema=monitoring_schema,
    )
    summary = summarise(ds, suites, outcomes, f"{output}.html", table)
    publish(output, summary, outcomes)
    return summary, outcomes
