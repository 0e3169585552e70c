"""The offline feature table (``silver.user_features``) and its labels (``silver.user_labels``).

**Point in time.** The features of feature date F are what was knowable at the end of F: events
with ``event_date`` in the 30-day horizon ``[F-29, F]`` *and* delivered by then
(``ingest_date <= F``). A late event delivered after F never changes F's row, so a rerun or a
backfill of F gives the same row whenever it runs; an event after F changes nothing.

**Population.** One row per user with at least one such event in the horizon.

**Features.** For each window of 1, 7 and 30 days ending at F (see
:data:`clickstream.contracts.WINDOW_FEATURES`): views, carts, removals, purchases, spend,
distinct products/categories/brands, sessions, view-to-cart and cart-to-purchase ratios, mean
price viewed and bought; plus days since the last view/cart/purchase and the tenure, both
within the 30-day horizon.

**One computation for a day and for a range.** Events are first reduced to one row per
(user, event date, ingest date); each such row is then fanned out to the feature dates it
counts for (``max(event_date, ingest_date) <= F <= event_date + 29``, inside the range) and
aggregated per (user, F). A daily run is the range [F, F] and reads only the horizon; a bulk
run (first load, backfill) does a whole range in one job with the same code, so bulk equals
daily by construction (and a test checks it).

**Kept activity.** The (user, event date, ingest date) rows are kept in
``silver.user_daily_activity`` (partitioned by event date), so a day reads 30 days of those
small rows instead of reducing 30 days of events again. Each feature run first refreshes the
event dates whose silver rows changed since the last refresh (silver's change data feed, see
:func:`refresh_daily_activity`); the features are the same as computed from the events (a test
checks it, re-deliveries and out-of-order days included).

**Labels.** ``purchased`` = 1 when the user bought within ``horizon_days`` after F, i.e. an
event in ``[F+1, F+h]`` delivered by ``F+h``. It is written by the run whose logical date is
``F+h`` (when the window has closed), with a MERGE, into a separate table, so rerunning the
features of F never erases a label and labels never leak into features.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    RECENCY_FEATURES,
    SILVER_EVENTS,
    USER_DAILY_ACTIVITY,
    USER_FEATURES,
    USER_LABELS,
    WINDOW_FEATURES,
    WINDOWS,
    check_frame,
    ensure_table,
    retry_on_conflict,
    write_partition,
)
from clickstream.core.schema import date_range, parse_ds

HORIZON_DAYS = max(WINDOWS)


def _lit_date(value: date) -> Column:
    return F.lit(value.isoformat()).cast("date")


def events_in_scope(events: DataFrame, start: date, end: date) -> DataFrame:
    """The silver events that can count for a feature date in [start, end] (partition-pruned)."""
    first = start - timedelta(days=HORIZON_DAYS - 1)
    return events.where(
        F.col("event_date").between(_lit_date(first), _lit_date(end))
        & (F.col("ingest_date") <= _lit_date(end))
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
    first_date = F.greatest("event_date", "ingest_date", _lit_date(start))
    last_date = F.least(F.date_add("event_date", HORIZON_DAYS - 1), _lit_date(end))
    return (
        activity.where(first_date <= last_date)
        .withColumn("feature_date", F.explode(F.sequence(first_date, last_date)))
        .withColumn("age", F.datediff("feature_date", "event_date"))
    )


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator)


def _window_aggregates(window: int) -> list[Column]:
    inside = F.col("age") < window

    def total(column: str) -> Column:
        return F.coalesce(F.sum(F.when(inside, F.col(column))), F.lit(0))

    def distinct(column: str) -> Column:
        return F.size(F.array_distinct(F.flatten(F.collect_list(F.when(inside, F.col(column))))))

    return [
        total("views").alias(f"views_{window}d"),
        total("carts").alias(f"carts_{window}d"),
        total("removals").alias(f"removals_{window}d"),
        total("purchases").alias(f"purchases_{window}d"),
        total("spend").cast("decimal(18,2)").alias(f"spend_{window}d"),
        total("price_viewed").alias(f"_price_viewed_{window}d"),
        distinct("products").alias(f"distinct_products_{window}d"),
        distinct("categories").alias(f"distinct_categories_{window}d"),
        distinct("brands").alias(f"distinct_brands_{window}d"),
        distinct("sessions").alias(f"sessions_{window}d"),
    ]


def _derived(window: int) -> list[Column]:
    def c(name: str) -> Column:
        return F.col(f"{name}_{window}d")

    return [
        _ratio(c("carts"), c("views")).alias(f"view_to_cart_{window}d"),
        _ratio(c("purchases"), c("carts")).alias(f"cart_to_purchase_{window}d"),
        _ratio(c("_price_viewed").cast("double"), c("views")).alias(f"avg_price_viewed_{window}d"),
        _ratio(c("spend").cast("double"), c("purchases")).alias(f"avg_price_bought_{window}d"),
    ]


def _date_range(start: str, end: str) -> tuple[date, date]:
    first, last = date.fromisoformat(parse_ds(start)), date.fromisoformat(parse_ds(end))
    if last < first:
        raise ValueError(f"the range {start}..{end} is empty: the end is before the start")
    return first, last


def compute_features(events: DataFrame, start: str, end: str) -> DataFrame:
    """Feature rows for every feature date in [start, end] from silver ``events``."""
    first, last = _date_range(start, end)
    return features_from_activity(daily_activity(events_in_scope(events, first, last)), start, end)


def features_from_activity(activity: DataFrame, start: str, end: str) -> DataFrame:
    """Feature rows for every feature date in [start, end] from :func:`daily_activity` rows
    (computed on the fly, or read from ``silver.user_daily_activity``)."""
    first, last = _date_range(start, end)
    fanned = fan_out(events_in_scope(activity, first, last), first, last)

    def last_age(column: str) -> Column:
        return F.min(F.when(F.col(column) > 0, F.col("age")))

    aggregated = fanned.groupBy("user_id", "feature_date").agg(
        *(agg for window in WINDOWS for agg in _window_aggregates(window)),
        last_age("views").alias("days_since_last_view"),
        last_age("carts").alias("days_since_last_cart"),
        last_age("purchases").alias("days_since_last_purchase"),
        F.max("age").alias("tenure_days"),
    )
    derived = aggregated.select("*", *(col for window in WINDOWS for col in _derived(window)))
    names = [f"{name}_{w}d" for w in WINDOWS for name, _, _ in WINDOW_FEATURES]
    return derived.select(
        F.col("user_id").cast("bigint"),
        "feature_date",
        *(F.col(n).cast(_feature_type(n)) for n in names),
        *(F.col(n).cast("int") for n, _ in RECENCY_FEATURES),
    )


def _feature_type(column: str) -> str:
    return next(c.type for c in USER_FEATURES.columns if c.name == column)


def feature_population(events: DataFrame, start: date, end: date) -> DataFrame:
    """(user_id, feature_date) of every feature row of [start, end], the features' own rule:
    each (user, event date, ingest date) fans out to the dates it counts for."""
    keys = events_in_scope(events, start, end).select("user_id", "event_date", "ingest_date")
    return fan_out(keys.distinct(), start, end).select("user_id", "feature_date").distinct()


def compute_label_range(events: DataFrame, start: str, end: str, horizon_days: int) -> DataFrame:
    """Labels of the feature rows of every feature date F in [start, end]: a purchase in the
    next ``horizon_days`` (event date in ``[F+1, F+h]``, delivered by ``F+h``), labelled on
    ``F+h``.

    The population is derived from silver with the features' own rule, not read from the
    feature table, so labels do not depend on which feature runs have happened yet. One scan
    for the whole range: each purchase fans out to the feature dates whose window holds it,
    ``max(event_date, ingest_date) - h <= F <= event_date - 1``, as the events do for the
    features.
    """
    first, last = date.fromisoformat(parse_ds(start)), date.fromisoformat(parse_ds(end))
    if last < first:
        raise ValueError(f"the range {start}..{end} is empty: the end is before the start")
    closes = last + timedelta(days=horizon_days)
    purchase_keys = events.where(
        F.col("event_date").between(_lit_date(first + timedelta(days=1)), _lit_date(closes))
        & (F.col("ingest_date") <= _lit_date(closes))
        & (F.col("event_type") == "purchase")
    ).select("user_id", "event_date", "ingest_date")
    first_date = F.greatest(
        F.date_sub("event_date", horizon_days),
        F.date_sub("ingest_date", horizon_days),
        _lit_date(first),
    )
    last_date = F.least(F.date_sub("event_date", 1), _lit_date(last))
    purchases = (
        purchase_keys.where(first_date <= last_date)
        .select("user_id", F.explode(F.sequence(first_date, last_date)).alias("feature_date"))
        .groupBy("user_id", "feature_date")
        .agg(F.count("*").alias("purchases"))
    )
    bought = F.coalesce(F.col("purchases"), F.lit(0))
    return (
        feature_population(events, first, last)
        .join(purchases, on=["user_id", "feature_date"], how="left")
        .select(
            "user_id",
            "feature_date",
            F.lit(horizon_days).alias("horizon_days"),
            (bought > 0).cast("int").alias("purchased"),
            bought.cast("bigint").alias("purchases"),
            F.date_add("feature_date", horizon_days).alias("labelled_on"),
        )
    )


def _range_predicate(start: str, end: str) -> str:
    return f"feature_date >= DATE'{parse_ds(start)}' AND feature_date <= DATE'{parse_ds(end)}'"


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


def build_features(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    silver_schema: str = "silver",
    progress=print,
) -> str:
    """Replace the feature rows of [start, end] (``replaceWhere`` on ``feature_date``), from
    the daily activity (refreshed first), so a day reads the horizon's small activity rows
    instead of reducing 30 days of events again."""
    refresh = refresh_daily_activity(
        spark, catalog=catalog, silver_schema=silver_schema, progress=progress
    )
    progress(refresh.describe())
    # The activity as this refresh left it: a refresh running at the same time may commit
    # after it, from an older silver version (the next refresh corrects that).
    table = USER_DAILY_ACTIVITY.name(catalog, silver_schema)
    activity = spark.sql(f"SELECT * FROM {table} VERSION AS OF {refresh.activity_version}")
    features = features_from_activity(activity, start, end)
    return write_partition(
        spark, features, USER_FEATURES, catalog, _range_predicate(start, end), silver_schema
    )


def build_labels(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    horizon_days: int,
    silver_schema: str = "silver",
) -> str | None:
    """MERGE the labels whose window closes on ``ds`` (feature date ``ds - horizon_days``).

    Returns the feature date labelled, or None when it has no feature rows (before the first
    events, or a day without users).
    """
    labelled = build_label_range(
        spark,
        start=ds,
        end=ds,
        catalog=catalog,
        horizon_days=horizon_days,
        silver_schema=silver_schema,
    )
    return next(iter(labelled), None)


def build_label_range(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    horizon_days: int,
    silver_schema: str = "silver",
) -> dict[str, int]:
    """The labels whose window closes on each date of [start, end], in one MERGE.

    Each closing date D labels feature date D - ``horizon_days`` (``labelled_on`` = D, as the
    daily run of D writes it). Returns the rows per feature date labelled; feature dates
    without feature rows are left out.
    """
    from delta.tables import DeltaTable

    if horizon_days < 1:
        raise ValueError(f"the label horizon must be at least 1 day, got {horizon_days}")
    events = spark.table(SILVER_EVENTS.name(catalog, silver_schema))
    shift = timedelta(days=horizon_days)
    labels = compute_label_range(
        events,
        (date.fromisoformat(parse_ds(start)) - shift).isoformat(),
        (date.fromisoformat(parse_ds(end)) - shift).isoformat(),
        horizon_days,
    )
    labels = check_frame(labels, USER_LABELS).persist()
    try:
        counts = {
            r["feature_date"].isoformat(): int(r["count"])
            for r in labels.groupBy("feature_date").count().collect()
        }
        if counts:
            table = ensure_table(spark, USER_LABELS, catalog, silver_schema)
            in_dates = ", ".join(f"DATE'{parse_ds(d)}'" for d in sorted(counts))
            retry_on_conflict(
                lambda: (
                    DeltaTable.forName(spark, table)
                    .alias("t")
                    .merge(
                        labels.alias("s"),
                        f"t.feature_date IN ({in_dates}) AND t.feature_date = s.feature_date "
                        "AND t.user_id = s.user_id AND t.horizon_days = s.horizon_days",
                    )
                    .whenMatchedUpdateAll()
                    .whenNotMatchedInsertAll()
                    .execute()
                )
            )
    finally:
        labels.unpersist()
    return dict(sorted(counts.items()))


def build_feature_range(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    horizon_days: int,
    silver_schema: str = "silver",
    progress=print,
) -> str:
    """The feature rows of every date of [start, end] in one pass, then the labels whose
    window closes on each date of the range: the same tables as running the days one by one.
    """
    days = date_range(start, end)
    table = build_features(
        spark,
        start=start,
        end=end,
        catalog=catalog,
        silver_schema=silver_schema,
        progress=progress,
    )
    progress(f"features of {start}..{end} ({len(days)} day(s)) written to {table}")
    labelled = build_label_range(
        spark,
        start=start,
        end=end,
        catalog=catalog,
        horizon_days=horizon_days,
        silver_schema=silver_schema,
    )
    for feature_date, rows in labelled.items():
        progress(f"labels of feature date {feature_date} closed ({rows} rows)")
    return table
