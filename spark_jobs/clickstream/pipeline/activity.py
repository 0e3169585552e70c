"""The daily activity (``silver.user_daily_activity``): what every feature is computed from.

Events are reduced to one row per (user, event date, ingest date) holding the additive parts of
every feature (:func:`daily_activity`). Such a row counts for the feature dates F with
``max(event_date, ingest_date) <= F <= event_date + 29`` (:func:`fan_out`): the features
(:mod:`clickstream.pipeline.features`) and the labels' population
(:mod:`clickstream.pipeline.labels`) both follow that rule.

**Kept activity.** The (user, event date, ingest date) rows are kept in
``silver.user_daily_activity`` (partitioned by event date), so a day reads 30 days of those
small rows instead of reducing 30 days of events again. Each feature run first refreshes the
event dates whose silver rows changed since the last refresh (silver's change data feed, see
:func:`refresh_daily_activity`); the features are the same as computed from the events (a test
checks it, re-deliveries and out-of-order days included).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    SILVER_EVENTS,
    USER_DAILY_ACTIVITY,
    WINDOWS,
    check_frame,
    ensure_table,
    retry_on_conflict,
)
from clickstream.core.schema import parse_ds

HORIZON_DAYS = max(WINDOWS)


def lit_date(value: date) -> Column:
    return F.lit(value.isoformat()).cast("date")


def events_in_scope(events: DataFrame, start: date, end: date) -> DataFrame:
    """The silver events that can count for a feature date in [start, end] (partition-pruned)."""
    first = start - timedelta(days=HORIZON_DAYS - 1)
    return events.where(
        F.col("event_date").between(lit_date(first), lit_date(end))
        & (F.col("ingest_date") <= lit_date(end))
    )


def daily_activity(events: DataFrame) -> DataFrame:
    """One row per (user, event_date, ingest_date): the additive parts of every feature."""
    kind = F.col("event_type")

    def count_of(event_type: str) -> Column:
        return F.count(F.when(kind == event_type, 1))

    return events.groupBy("user_id", "event_date", "ingest_date").agg(
        count_of("view").alias("views"),
        count_of("cart").alias("carts"),
        count_of("remove_from_cart").alias("removals"),
        count_of("purchase").alias("purchases"),
        F.sum(F.when(kind == "purchase", F.col("price"))).alias("spend"),
        F.sum(F.when(kind == "view", F.col("price"))).alias("price_viewed"),
        # Sorted: a set's order depends on how the rows were partitioned, and the kept rows
        # must not change when the same events are reduced again.
        F.array_sort(F.collect_set("product_id")).alias("products"),
        F.array_sort(F.collect_set("category_id")).alias("categories"),
        F.array_sort(F.collect_set("brand")).alias("brands"),
        F.array_sort(F.collect_set("user_session")).alias("sessions"),
    )


def fan_out(activity: DataFrame, start: date, end: date) -> DataFrame:
    """Each activity row once per feature date it counts for, with ``age`` = F - event_date."""
    first_date = F.greatest("event_date", "ingest_date", lit_date(start))
    last_date = F.least(F.date_add("event_date", HORIZON_DAYS - 1), lit_date(end))
    return (
        activity.where(first_date <= last_date)
        .withColumn("feature_date", F.explode(F.sequence(first_date, last_date)))
        .withColumn("age", F.datediff("feature_date", "event_date"))
    )


@dataclass(frozen=True)
class ActivityRefresh:
    """What :func:`refresh_daily_activity` did: the activity now reflects ``silver_version``."""

    table: str
    silver_version: int
    event_dates: list[str] | None  # the event dates rewritten; None: rebuilt from all of silver
    activity_version: int  # the activity's version that holds this refresh's rows

    def describe(self) -> str:
        if self.event_dates is None:
            return f"{self.table} rebuilt from silver version {self.silver_version}"
        if not self.event_dates:
            return f"{self.table}: no row of silver changed since version {self.silver_version}"
        dates = self.event_dates
        shown = ", ".join(dates) if len(dates) <= 5 else f"{dates[0]}..{dates[-1]}"
        return (
            f"{self.table}: {len(dates)} event date(s) refreshed ({shown}) to silver version "
            f"{self.silver_version}"
        )


# Delta's answers when the change data feed cannot cover the versions asked for: it was not
# enabled then (a silver table created before it was declared), or VACUUM removed its files.
_CHANGE_FEED_UNAVAILABLE = (
    "DELTA_MISSING_CHANGE_DATA",
    "DELTA_CHANGE_DATA_FILE_NOT_FOUND",
    "DELTA_CHANGE_TABLE_FEED_DISABLED",
    "DELTA_CDC_NOT_ALLOWED_IN_THIS_VERSION",
    "DELTA_VERSIONS_NOT_CONTIGUOUS",
    # Delta 4.4: a version older than delta.deletedFileRetentionDuration cannot be read.
    "DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION",
)
# Commits of the activity table that leave its rows as the last refresh wrote them.
_ROWS_UNCHANGED = ("OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "CREATE TABLE")


@dataclass(frozen=True)
class _Mark:
    """A silver commit: its version and timestamp in epoch milliseconds (a table created again
    reuses versions, not timestamps)."""

    version: int
    timestamp: int


@dataclass(frozen=True)
class _Record:
    """The last refresh: the silver commit it reflects, and its own version of the activity."""

    silver: _Mark
    activity_version: int


def _history(spark: SparkSession, table: str) -> list:
    """Every retained commit of ``table``, newest first (time zone free timestamps)."""
    return (
        spark.sql(f"DESCRIBE HISTORY {table}")
        .select("version", F.unix_millis("timestamp").alias("millis"), "operation", "userMetadata")
        .orderBy(F.col("version").desc())
        .collect()
    )


def _record(spark: SparkSession, activity: str, progress) -> _Record | None:
    """The ``userMetadata`` of the activity's latest refresh; None when there is none, or when
    a later commit changed its rows (a RESTORE, a DELETE by hand): then it cannot be trusted."""
    for commit in _history(spark, activity):
        if commit["userMetadata"] is None:
            if commit["operation"] in _ROWS_UNCHANGED:
                continue
            progress(
                f"{activity} was changed by {commit['operation']} (version "
                f"{commit['version']}) after its last refresh: it is rebuilt"
            )
            return None
        try:
            metadata = json.loads(commit["userMetadata"])
            mark = _Mark(int(metadata["silver_version"]), int(metadata["silver_commit_millis"]))
        except (ValueError, KeyError, TypeError):
            progress(
                f"{activity} version {commit['version']}: unreadable refresh record "
                f"{commit['userMetadata']!r}: it is rebuilt"
            )
            return None
        return _Record(mark, int(commit["version"]))
    return None


def _changed_event_dates(
    spark: SparkSession, events: str, after: int, until: int, progress=print
) -> list[str] | None:
    """The event dates of every silver row inserted, updated or deleted in versions
    (``after``, ``until``], from the change data feed; None when the feed cannot tell."""
    try:
        changes = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", after + 1)
            .option("endingVersion", until)
            .table(events)
        )
        rows = changes.select("event_date").distinct().collect()
    except Exception as error:
        if not any(marker in str(error) for marker in _CHANGE_FEED_UNAVAILABLE):
            raise
        first_line = str(error).strip().splitlines()[0]
        progress(
            f"the change data feed of {events} does not cover versions {after + 1}..{until} "
            f"({first_line[:200]}): the daily activity is rebuilt from all of silver"
        )
        return None
    return sorted(r["event_date"].isoformat() for r in rows)


def refreshed_silver_version(
    spark: SparkSession, *, catalog: str, silver_schema: str = "silver"
) -> int | None:
    """The silver version the daily activity's last refresh reflects: the next refresh reads
    silver's change data feed from the version after it. None without a usable record (no
    activity table yet, or one the next refresh rebuilds from all of silver)."""
    table = USER_DAILY_ACTIVITY.name(catalog, silver_schema)
    if not spark.catalog.tableExists(table):
        return None
    record = _record(spark, table, progress=lambda _message: None)
    return record.silver.version if record is not None else None


def refresh_daily_activity(
    spark: SparkSession, *, catalog: str, silver_schema: str = "silver", progress=print
) -> ActivityRefresh:
    """Bring ``silver.user_daily_activity`` up to date with ``silver.events``.

    The activity rows of an event date depend only on silver's rows of that date, so the event
    dates to rewrite are those of the silver rows changed since the last refresh (silver's
    change data feed, from the silver version recorded in the last refresh's commit). That
    covers every way a row changes: the day's new events and late events, and an earlier
    delivery that moves an event to an earlier ingest date. Each event date is rewritten whole
    from silver at one version, whose number and timestamp are recorded with the write. Without
    a usable record (the first run, a silver table created again: its versions restart, with
    other timestamps; a feed that does not reach back) the table is rebuilt from all of silver.
    Two refreshes at once are safe: Delta refuses the second commit to the same event dates,
    and that refresh starts again from the first one's record (:func:`retry_on_conflict`); one
    that records an older version on other event dates only makes the next one do more.
    """
    events = SILVER_EVENTS.name(catalog, silver_schema)
    if not spark.catalog.tableExists(events):
        raise ValueError(f"{events} does not exist: run build_silver_events first")
    table = ensure_table(spark, USER_DAILY_ACTIVITY, catalog, silver_schema)
    # A conflict means another refresh committed to these event dates since this one read
    # the record: start again from its record, never write this one's older rows over it.
    return retry_on_conflict(lambda: _refresh_once(spark, events, table, progress))


def _refresh_once(spark: SparkSession, events: str, table: str, progress) -> ActivityRefresh:
    silver = {int(c["version"]): int(c["millis"]) for c in _history(spark, events)}
    current = max(silver)
    record = _record(spark, table, progress)
    if record is not None and record.silver == _Mark(current, silver[current]):
        return ActivityRefresh(table, current, [], record.activity_version)
    dates = None
    # The recorded commit must still be silver's (not a table dropped and created again).
    if record is not None and silver.get(record.silver.version) == record.silver.timestamp:
        dates = _changed_event_dates(spark, events, record.silver.version, current, progress)
        if dates == []:  # commits that changed no row (a MERGE of nothing new, OPTIMIZE)
            return ActivityRefresh(table, record.silver.version, [], record.activity_version)
    rows = spark.sql(f"SELECT * FROM {events} VERSION AS OF {current}")
    token = uuid.uuid4().hex
    metadata = json.dumps(
        {"silver_version": current, "silver_commit_millis": silver[current], "refresh": token}
    )
    if dates is None:
        writer = check_frame(daily_activity(rows), USER_DAILY_ACTIVITY).write.mode("overwrite")
    else:
        predicate = "event_date IN (" + ", ".join(f"DATE'{parse_ds(d)}'" for d in dates) + ")"
        checked = check_frame(daily_activity(rows.where(predicate)), USER_DAILY_ACTIVITY)
        writer = checked.write.mode("overwrite").option("replaceWhere", predicate)
    writer.format("delta").option("userMetadata", metadata).saveAsTable(table)
    (written,) = [
        c["version"]
        for c in _history(spark, table)
        if c["userMetadata"] and token in c["userMetadata"]
    ]
    return ActivityRefresh(table, current, dates, int(written))
