"""The checks of each data-quality suite, as plain data: what the rows of a date must hold.

A suite validates the rows of one date of one table (:data:`SUITE_ROWS`) and is a list of
:class:`Check`: a Great Expectations 1.x expectation (its class name and arguments), a
severity, the threshold in words, and why the check exists. ``clickstream.quality.validation``
runs them through GE; nothing here imports Spark or GE, so ``local/docs/quality_checks.py``
renders every suite as a table of ``docs/quality_checks.md`` (``make docs``).

Severity is GE's own field: ``blocking`` (``severity="critical"``) fails the Airflow gate,
``warning`` is reported only. Thresholds are the module constants below;
``--late-tolerance-hours`` and ``--volume-lookback-days`` of ``validate_data.py`` are options.

Checks with ``target="profile"`` run on the one-row *day profile* of the bronze suite (see
``clickstream.quality.inputs``): the day's volume against recent days and the share of
quarantined lines are not a property of a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from clickstream.core.contracts import (
    BRONZE_EVENTS,
    RECENCY_FEATURES,
    SILVER_EVENTS,
    USER_FEATURES,
    WINDOW_FEATURES,
    WINDOWS,
    Contract,
)
from clickstream.core.schema import EVENT_TYPES, RAW_COLUMNS, parse_ds

# suite -> (the table, its date column, the job that writes it: run it first when missing).
SUITE_ROWS: dict[str, tuple[Contract, str, str]] = {
    "bronze_events": (BRONZE_EVENTS, "ingest_date", "ingest_events"),
    "silver_events": (SILVER_EVENTS, "event_date", "build_silver_events"),
    "user_features": (USER_FEATURES, "feature_date", "build_user_features"),
}
SUITES: tuple[str, ...] = tuple(SUITE_ROWS)
BLOCKING, WARNING = "blocking", "warning"

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

# Count-like features, never negative (the ratios and means are nullable doubles, not checked).
COUNT_FEATURES: tuple[str, ...] = tuple(
    f"{name}_{w}d" for w in WINDOWS for name, kind, _ in WINDOW_FEATURES if kind != "double"
)
RECENCY_COLUMNS: tuple[str, ...] = tuple(name for name, _ in RECENCY_FEATURES)


@dataclass(frozen=True)
class Check:
    """One expectation of a suite, as plain data.

    ``expectation`` is the class name in ``great_expectations.expectations``; ``target`` is
    the frame it runs on (``rows``: the day's rows; ``profile``: the one-row day profile);
    ``label`` names an aggregate observed value; ``skipped`` says why it is not evaluated;
    ``description`` says why the check exists (``docs/quality_checks.md``, not sent to GE).
    """

    expectation: str
    kwargs: Mapping[str, Any]
    severity: str
    expected: str
    target: str = "rows"
    label: str = ""
    skipped: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def column(self) -> str | None:
        if "column" in self.kwargs:
            return str(self.kwargs["column"])
        if "column_list" in self.kwargs:
            return ",".join(self.kwargs["column_list"])
        return None


# --------------------------------------------------------------------------- shared checks


def _schema_check(contract: Contract, description: str) -> Check:
    return Check(
        "ExpectTableColumnsToMatchSet",
        {"column_set": contract.names, "exact_match": True},
        BLOCKING,
        f"exactly the {len(contract.names)} columns of the {contract.schema}.{contract.table} "
        "contract",
        description=description,
    )


def _row_count(expected: str, description: str) -> Check:
    """Blocking: the day has at least one row (a table-level check on the day's rows)."""
    return Check(
        "ExpectTableRowCountToBeBetween",
        {"min_value": 1},
        BLOCKING,
        expected,
        label="rows",
        description=description,
    )


def _not_null(columns: Iterable[str], description: str) -> list[Check]:
    return [
        Check(
            "ExpectColumnValuesToNotBeNull",
            {"column": c},
            BLOCKING,
            "no null",
            description=description,
        )
        for c in columns
    ]


def _event_types() -> Check:
    return Check(
        "ExpectColumnValuesToBeInSet",
        {"column": "event_type", "value_set": list(EVENT_TYPES)},
        BLOCKING,
        "in {" + ", ".join(EVENT_TYPES) + "}",
        description="features count each type; an unknown one would be lost",
    )


def _utc(value: date, hours: float = 0.0) -> datetime:
    return datetime.combine(value, time.min, tzinfo=UTC) + timedelta(hours=hours)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _share(value: float) -> str:
    return f"{value:g}"


# --------------------------------------------------------------------------- bronze_events


def _event_time_check(day: date, late_tolerance_hours: float) -> Check:
    earliest, end = _utc(day, -late_tolerance_hours), _utc(day + timedelta(days=1))
    return Check(
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
        description="late or early events land in other event dates: a few are normal (late "
        "sessions), many mean a wrong or shifted file; the window opens "
        "`--late-tolerance-hours` before the date",
    )


def _volume_check(profile: Mapping[str, Any], volume_lookback_days: int) -> Check:
    history = profile["history_days"]
    skipped = (
        f"insufficient history: {history} day(s) of bronze in the previous "
        f"{volume_lookback_days}, at least {VOLUME_MIN_HISTORY_DAYS} needed"
        if history < VOLUME_MIN_HISTORY_DAYS
        else ""
    )
    return Check(
        "ExpectColumnMaxToBeBetween",
        {"column": "volume_ratio", "min_value": VOLUME_RATIO_MIN, "max_value": VOLUME_RATIO_MAX},
        BLOCKING,
        f"{_share(VOLUME_RATIO_MIN)} <= ratio <= {_share(VOLUME_RATIO_MAX)} (rows / median "
        f"of the previous {volume_lookback_days} days)",
        target="profile",
        label="volume ratio",
        skipped=skipped,
        context={k: profile[k] for k in ("rows", "history_days", "history_median")},
        description="a truncated or doubled file; the history is `--volume-lookback-days` long. "
        f"Skipped (not failed) with fewer than {VOLUME_MIN_HISTORY_DAYS} days of history",
    )


def _quarantine_checks(profile: Mapping[str, Any]) -> list[Check]:
    context = {k: profile[k] for k in ("rows", "quarantined")}
    return [
        Check(
            "ExpectColumnMaxToBeBetween",
            {"column": "quarantine_share", "min_value": 0, "max_value": maximum},
            severity,
            f"<= {_share(maximum)}",
            target="profile",
            label="quarantine share",
            context=context,
            description=description,
        )
        for maximum, severity, description in (
            (
                QUARANTINE_BLOCKING,
                BLOCKING,
                "quarantined / (bronze + quarantined) lines of the date: a broken export "
                "loses data",
            ),
            (QUARANTINE_WARNING, WARNING, "a few bad lines are normal, more deserve a look"),
        )
    ]


def bronze_checks(
    ds: str,
    profile: Mapping[str, Any],
    *,
    late_tolerance_hours: float = LATE_TOLERANCE_HOURS,
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
) -> list[Check]:
    """The bronze_events suite of ``ds``; ``profile`` is the day profile (see ``day_profile``)."""
    day = date.fromisoformat(parse_ds(ds))
    return [
        _schema_check(BRONZE_EVENTS, "later jobs read them by name"),
        _row_count(
            ">= 1 row in bronze.events for the date",
            "an empty day (header-only or 0-byte files, or every line quarantined): nothing "
            "to serve",
        ),
        *_not_null(
            ("event_time", "event_type", "product_id", "user_id"),
            "an event without them cannot be placed in time, typed or keyed",
        ),
        _event_types(),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "price", "min_value": 0, "max_value": PRICE_MAX},
            WARNING,
            f"0 <= price <= {PRICE_MAX} for every row",
            description="an absurd price skews spend; worth a look, not a stop",
        ),
        _event_time_check(day, late_tolerance_hours),
        Check(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": list(RAW_COLUMNS), "mostly": 1 - DUPLICATE_MAX_SHARE},
            WARNING,
            f"<= {DUPLICATE_MAX_SHARE:.0%} of rows duplicated (same 9 source fields)",
            description="silver removes duplicates; many mean a file delivered twice or a "
            "tracker retry storm",
        ),
        _volume_check(profile, volume_lookback_days),
        *_quarantine_checks(profile),
    ]


# --------------------------------------------------------------------------- silver and features


def silver_checks() -> list[Check]:
    return [
        _schema_check(SILVER_EVENTS, "later jobs read them by name"),
        _row_count(">= 1 event in the event date", "an empty day reached silver"),
        Check(
            "ExpectColumnValuesToBeUnique",
            {"column": "event_id"},
            BLOCKING,
            "unique in the event date",
            description="the MERGE key; a duplicate double-counts in features",
        ),
        *_not_null(
            ("event_id", "event_time", "event_type", "product_id", "user_id"),
            "keys of every downstream join and aggregation",
        ),
        _event_types(),
    ]


def _min_zero(columns: Iterable[str], severity: str, description: str) -> list[Check]:
    return [
        Check(
            "ExpectColumnMinToBeBetween",
            {"column": c, "min_value": 0},
            severity,
            ">= 0",
            label="min",
            description=description,
        )
        for c in columns
    ]


def user_feature_checks() -> list[Check]:
    return [
        _schema_check(USER_FEATURES, "training and serving read them"),
        _row_count(">= 1 user in the feature date", "no user active in 30 days"),
        Check(
            "ExpectColumnValuesToBeUnique",
            {"column": "user_id"},
            BLOCKING,
            "one row per user",
            description="the table's key (with the date)",
        ),
        *_not_null(("user_id", "feature_date"), "the key of every lookup"),
        *_min_zero(COUNT_FEATURES, BLOCKING, "a negative count is a bug in the feature job"),
        *_min_zero(
            RECENCY_COLUMNS,
            WARNING,
            "an event after the feature date leaked in, or upstream clocks disagree",
        ),
    ]


def suite_checks(
    suite: str,
    ds: str,
    profile: Mapping[str, Any] | None = None,
    *,
    late_tolerance_hours: float = LATE_TOLERANCE_HOURS,
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
) -> list[Check]:
    """The checks of ``suite`` for ``ds``; the bronze ones need the day ``profile``."""
    if suite == "bronze_events":
        if profile is None:
            raise ValueError("the bronze_events checks need the day profile")
        return bronze_checks(
            ds,
            profile,
            late_tolerance_hours=late_tolerance_hours,
            volume_lookback_days=volume_lookback_days,
        )
    if suite == "silver_events":
        return silver_checks()
    if suite == "user_features":
        return user_feature_checks()
    raise ValueError(f"unknown suite {suite!r}: expected one of {', '.join(SUITES)}")


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
