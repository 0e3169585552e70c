"""Offline features and labels on tiny inline DataFrames: windows, point in time, labels."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from pyspark.testing import assertDataFrameEqual

from clickstream.core.contracts import FEATURE_COLUMNS, USER_FEATURES, check_frame, table_version
from clickstream.pipeline.activity import daily_activity, refresh_daily_activity
from clickstream.pipeline.features import build_features, compute_features
from clickstream.pipeline.labels import build_labels, compute_label_range
from tests.support.rows import F_DATE, event

pytestmark = pytest.mark.spark

DS = F_DATE.isoformat()


def days_before(n: int) -> date:
    return F_DATE - timedelta(days=n)


def _zero_row(**overrides) -> dict:
    """A feature row of an inactive window everywhere, then the given values."""
    row = {c: (0 if not c.startswith("spend_") else Decimal("0.00")) for c in FEATURE_COLUMNS}
    for column in FEATURE_COLUMNS:
        if column.startswith(("view_to_cart", "cart_to_purchase", "avg_price", "days_since")):
            row[column] = None
    row.update(overrides)
    return row


def _features(silver_events, rows, ds=DS) -> dict[int, dict]:
    result = compute_features(silver_events(rows), ds, ds).collect()
    return {r["user_id"]: {c: r[c] for c in FEATURE_COLUMNS} for r in result}


def test_windows_count_events_by_their_age(silver_events):
    rows = [
        event(1, F_DATE, "view", product=1, price="10.00", session="a"),
        event(1, F_DATE, "cart", product=1, price="10.00", session="a", second=1),
        event(1, days_before(3), "view", product=2, price="20.00", session="b", brand=None),
        event(1, days_before(3), "purchase", product=2, price="20.00", session="b", second=1),
        event(1, days_before(20), "view", product=3, price="30.00", session="c", category=200),
    ]
    expected = _zero_row(
        views_1d=1,
        views_7d=2,
        views_30d=3,
        carts_1d=1,
        carts_7d=1,
        carts_30d=1,
        purchases_7d=1,
        purchases_30d=1,
        spend_7d=Decimal("20.00"),
        spend_30d=Decimal("20.00"),
        distinct_products_1d=1,
        distinct_products_7d=2,
        distinct_products_30d=3,
        distinct_categories_1d=1,
        distinct_categories_7d=1,
        distinct_categories_30d=2,
        distinct_brands_1d=1,
        distinct_brands_7d=1,
        distinct_brands_30d=1,
        sessions_1d=1,
        sessions_7d=2,
        sessions_30d=3,
        view_to_cart_1d=1.0,
        view_to_cart_7d=0.5,
        view_to_cart_30d=1 / 3,
        cart_to_purchase_1d=0.0,
        cart_to_purchase_7d=1.0,
        cart_to_purchase_30d=1.0,
        avg_price_viewed_1d=10.0,
        avg_price_viewed_7d=15.0,
        avg_price_viewed_30d=20.0,
        avg_price_bought_7d=20.0,
        avg_price_bought_30d=20.0,
        days_since_last_view=0,
        days_since_last_cart=0,
        days_since_last_purchase=3,
        tenure_days=20,
    )
    assert _features(silver_events, rows) == {1: expected}


def test_a_user_with_a_single_event_gets_a_row(silver_events):
    rows = [event(7, days_before(10), "view", price="5.50")]
    expected = _zero_row(
        views_30d=1,
        distinct_products_30d=1,
        distinct_categories_30d=1,
        distinct_brands_30d=1,
        sessions_30d=1,
        view_to_cart_30d=0.0,
        avg_price_viewed_30d=5.5,
        days_since_last_view=10,
        tenure_days=10,
    )
    assert _features(silver_events, rows) == {7: expected}


def test_events_after_the_feature_date_or_delivered_after_it_change_nothing(silver_events):
    """The leakage test: what was not known at the end of F cannot shape F's row."""
    known = [
        event(1, days_before(2), "view"),
        event(2, F_DATE, "cart", product=9),
    ]
    future = [
        event(1, F_DATE + timedelta(days=1), "purchase", price="99.00"),
        # Happened on F but delivered the next day: unknown at the end of F.
        event(1, F_DATE, "purchase", price="50.00", ingest=F_DATE + timedelta(days=1)),
        # A user whose only event so far arrives late.
        event(3, days_before(1), "view", ingest=F_DATE + timedelta(days=2)),
    ]
    baseline = compute_features(silver_events(known), DS, DS)
    assertDataFrameEqual(compute_features(silver_events(known + future), DS, DS), baseline)
    assert sorted(r["user_id"] for r in baseline.collect()) == [1, 2]


def test_a_late_event_counts_on_its_event_date_once_delivered(silver_events):
    # A view of F-2 delivered in F's file: known at the end of F, two days old.
    rows = [event(1, days_before(2), "view", ingest=F_DATE)]
    features = _features(silver_events, rows)[1]
    assert (features["views_1d"], features["views_7d"], features["days_since_last_view"]) == (
        0,
        1,
        2,
    )
    # Not yet known one day earlier.
    earlier = days_before(1).isoformat()
    assert compute_features(silver_events(rows), earlier, earlier).collect() == []


def test_users_outside_the_30_day_horizon_have_no_row(silver_events):
    rows = [event(1, days_before(30), "purchase"), event(2, days_before(29), "view")]
    assert sorted(_features(silver_events, rows)) == [2]


def test_an_empty_day_has_no_rows_and_the_contract_schema(silver_events):
    features = compute_features(silver_events([]), DS, DS)
    assert features.collect() == []
    assert check_frame(features, USER_FEATURES).columns == USER_FEATURES.names


def test_a_range_equals_the_days_computed_one_by_one(silver_events):
    rows = [
        event(
            u,
            days_before(d),
            kind,
            product=p,
            price=f"{5 + p}.00",
            session=f"s{u}{d}",
            ingest=days_before(max(d - late, 0)),
        )
        for u, d, kind, p, late in [
            (1, 0, "view", 1, 0),
            (1, 3, "cart", 2, 0),
            (1, 3, "purchase", 2, 1),
            (2, 5, "view", 3, 0),
            (2, 12, "view", 4, 2),
            (3, 1, "remove_from_cart", 5, 0),
            (3, 35, "view", 6, 0),
            (4, 8, "purchase", 7, 0),
        ]
    ]
    events = silver_events(rows)
    start, end = days_before(9), F_DATE
    bulk = compute_features(events, start.isoformat(), end.isoformat())
    daily = None
    for offset in range((end - start).days + 1):
        ds = (start + timedelta(days=offset)).isoformat()
        day = compute_features(events, ds, ds)
        daily = day if daily is None else daily.unionByName(day)
    assert bulk.count() > 10
    assertDataFrameEqual(bulk, daily)


def test_an_inverted_range_is_refused(silver_events):
    with pytest.raises(ValueError, match="the end is before the start"):
        compute_features(silver_events([]), DS, "2019-10-01")


def test_labels_count_purchases_delivered_inside_the_horizon(spark, silver_events):
    f = F_DATE
    rows = [
        event(1, f, "view"),
        event(1, f + timedelta(days=3), "purchase"),  # inside (F, F+7]: positive
        event(2, f, "view"),
        event(2, f + timedelta(days=8), "purchase"),  # after the horizon: negative
        event(3, f, "view"),
        event(3, f, "purchase"),  # on F itself: a feature, not a label
        event(4, f, "view"),  # bought inside the horizon, delivered after it closed
        event(4, f + timedelta(days=7), "purchase", ingest=f + timedelta(days=8)),
        event(5, f + timedelta(days=2), "purchase"),  # no feature row on F: no label
    ]
    events = silver_events(rows)
    labels = compute_label_range(events, DS, DS, 7)
    population = compute_features(events, DS, DS).select("user_id", "feature_date")
    assertDataFrameEqual(labels.select("user_id", "feature_date"), population)
    expected = spark.createDataFrame(
        [(1, f, 7, 1, 1, f + timedelta(days=7))]
        + [(u, f, 7, 0, 0, f + timedelta(days=7)) for u in (2, 3, 4)],
        "user_id bigint, feature_date date, horizon_days int, purchased int, purchases bigint, "
        "labelled_on date",
    )
    assertDataFrameEqual(labels, expected)


def test_labels_of_a_range_follow_the_definition_on_each_date(spark, silver_events):
    """One computation for a range of feature dates gives each date its labels by definition."""
    f = F_DATE
    d = timedelta(days=1)
    rows = [
        event(1, f - 3 * d, "view"),
        event(1, f + 2 * d, "purchase"),  # labels F-3+..: inside several windows
        event(2, f, "view"),
        event(2, f + 4 * d, "purchase", ingest=f + 9 * d),  # late: only windows closing later
        event(3, f + d, "cart"),
        event(3, f + d, "purchase"),  # on F+1: a label of F and earlier, a feature of F+1
        event(4, f - 40 * d, "view"),  # outside every horizon of the range
        event(5, f + 3 * d, "view", ingest=f + 5 * d),  # joins the population late
        event(5, f + 6 * d, "purchase"),
    ]
    h, days = 3, [f + k * d for k in range(-4, 5)]
    # The definition, date by date, over the plain rows (user, kind, event date, ingest date).
    plain = [(r[8], r[2], r[11], r[12]) for r in rows]
    expected = []
    for day in days:
        population = {u for u, _, e, i in plain if day - 29 * d <= e <= day and i <= day}
        for user in sorted(population):
            bought = sum(
                1
                for u, kind, e, i in plain
                if u == user and kind == "purchase" and day < e <= day + h * d and i <= day + h * d
            )
            expected.append((user, day, h, int(bought > 0), bought, day + h * d))
    ranged = compute_label_range(silver_events(rows), days[0].isoformat(), days[-1].isoformat(), h)
    assert sum(1 for row in expected if row[3]) >= 3, "the case has positives on several dates"
    assertDataFrameEqual(
        ranged,
        spark.createDataFrame(
            expected,
            "user_id bigint, feature_date date, horizon_days int, purchased int, "
            "purchases bigint, labelled_on date",
        ),
    )


def test_labels_are_written_only_once_their_window_has_closed(spark, silver_events, schema_name):
    f = F_DATE
    rows = [event(1, f, "view"), event(1, f + timedelta(days=2), "purchase")]
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema_name}")
    silver_events(rows).write.format("delta").saveAsTable(f"{schema_name}.events")
    catalog = "spark_catalog"
    for offset in range(0, 3):
        build_features(
            spark,
            start=(f + timedelta(days=offset)).isoformat(),
            end=(f + timedelta(days=offset)).isoformat(),
            catalog=catalog,
            silver_schema=schema_name,
        )
    # Run of F+1: its label date F-6 has no features; nothing is labelled.
    assert (
        build_labels(
            spark, ds="2019-11-01", catalog=catalog, horizon_days=7, silver_schema=schema_name
        )
        is None
    )
    assert not spark.catalog.tableExists(f"{schema_name}.user_labels")
    # Run of F+2 with a 2-day horizon closes F's labels: user 1 bought on F+2.
    assert (
        build_labels(
            spark, ds="2019-11-02", catalog=catalog, horizon_days=2, silver_schema=schema_name
        )
        == DS
    )
    labels = spark.table(f"{schema_name}.user_labels").collect()
    assert [(r["user_id"], str(r["feature_date"]), r["purchased"]) for r in labels] == [(1, DS, 1)]
    # Rerunning the features of F keeps the label; rerunning the label run changes nothing.
    build_features(spark, start=DS, end=DS, catalog=catalog, silver_schema=schema_name)
    build_labels(spark, ds="2019-11-02", catalog=catalog, horizon_days=2, silver_schema=schema_name)
    assertDataFrameEqual(spark.table(f"{schema_name}.user_labels"), labels)


def test_a_rerun_of_a_date_leaves_the_feature_table_identical(spark, silver_events, schema_name):
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema_name}")
    rows = [event(u, days_before(d), "view", product=d) for u in (1, 2) for d in (0, 1, 4)]
    silver_events(rows).write.format("delta").saveAsTable(f"{schema_name}.events")
    args = {"catalog": "spark_catalog", "silver_schema": schema_name}
    build_features(spark, start=days_before(2).isoformat(), end=DS, **args)
    first = spark.table(f"{schema_name}.user_features").collect()
    build_features(spark, start=days_before(1).isoformat(), end=days_before(1).isoformat(), **args)
    assertDataFrameEqual(spark.table(f"{schema_name}.user_features"), first)
    assert len(first) == 6


# The kept daily activity (silver.user_daily_activity): refreshed from silver's change data feed.
def _silver_with_change_feed(spark, schema: str) -> str:
    from clickstream.core.contracts import SILVER_EVENTS, ensure_table

    return ensure_table(spark, SILVER_EVENTS, "spark_catalog", schema)


def _deliver(spark, silver_events, table: str, rows: list[tuple]) -> None:
    """Merge rows into silver with the silver job's own MERGE (earliest delivery wins)."""
    from clickstream.pipeline.silver import merge_into_silver

    frame = silver_events(rows)
    dates = sorted({str(r["event_date"]) for r in frame.select("event_date").collect()})
    merge_into_silver(spark, frame, table, dates)


def _assert_activity_and_features_follow_silver(spark, schema: str, ds: str) -> None:
    silver = spark.table(f"{schema}.events")
    assertDataFrameEqual(spark.table(f"{schema}.user_daily_activity"), daily_activity(silver))
    assertDataFrameEqual(
        spark.table(f"{schema}.user_features").where(f"feature_date = DATE'{ds}'"),
        check_frame(compute_features(silver, ds, ds), USER_FEATURES),
    )


def test_kept_activity_refreshes_only_changed_event_dates_and_gives_the_events_features(
    spark, silver_events, schema_name
):
    d = [days_before(n) for n in (3, 2, 1, 0)]  # d[0] < d[1] < d[2] < d[3] = F
    table = _silver_with_change_feed(spark, schema_name)
    args = {"catalog": "spark_catalog", "silver_schema": schema_name}
    _deliver(
        spark,
        silver_events,
        table,
        [
            event(1, d[0], "view", product=1),
            event(2, d[0], "cart", product=2, session="b"),
        ],
    )
    build_features(spark, start=d[0].isoformat(), end=d[0].isoformat(), **args)
    _assert_activity_and_features_follow_silver(spark, schema_name, d[0].isoformat())

    # d[2]'s file arrives before d[1]'s: an event of d[1] delivered late by d[2], and a new one.
    late = event(3, d[1], "purchase", product=3, price="30.00", ingest=d[2])
    _deliver(spark, silver_events, table, [late, event(1, d[2], "view", product=4)])
    refresh = refresh_daily_activity(spark, **args)
    assert refresh.event_dates == [d[1].isoformat(), d[2].isoformat()]
    build_features(spark, start=d[2].isoformat(), end=d[2].isoformat(), **args)
    _assert_activity_and_features_follow_silver(spark, schema_name, d[2].isoformat())

    # d[1]'s own file delivers the same event again: silver moves it to the earlier ingest
    # date, so the activity row of (user 3, d[1], d[2]) must become (user 3, d[1], d[1]).
    on_time = event(3, d[1], "purchase", product=3, price="30.00", ingest=d[1])
    _deliver(spark, silver_events, table, [on_time])
    build_features(spark, start=d[3].isoformat(), end=d[3].isoformat(), **args)
    _assert_activity_and_features_follow_silver(spark, schema_name, d[3].isoformat())
    moved = spark.table(f"{schema_name}.user_daily_activity").where("user_id = 3").collect()
    assert [(r["event_date"], r["ingest_date"]) for r in moved] == [(d[1], d[1])]

    # Nothing changed since: the refresh writes nothing.
    version = table_version(spark, f"{schema_name}.user_daily_activity")
    assert refresh_daily_activity(spark, **args).event_dates == []
    assert table_version(spark, f"{schema_name}.user_daily_activity") == version

    # d[1]'s file merged again: silver commits, but its change feed holds no row.
    silver_before = table_version(spark, table)
    _deliver(spark, silver_events, table, [on_time])
    assert table_version(spark, table) > silver_before
    assert refresh_daily_activity(spark, **args).event_dates == []
    assert table_version(spark, f"{schema_name}.user_daily_activity") == version


def test_kept_activity_is_rebuilt_whole_when_the_change_feed_cannot_tell(
    spark, silver_events, schema_name, capsys
):
    """A silver table without the change data feed (created before it was declared), then a
    silver table dropped and created again: the activity is rebuilt from all of silver."""
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema_name}")
    name = f"{schema_name}.events"
    args = {"catalog": "spark_catalog", "silver_schema": schema_name}
    silver_events([event(1, days_before(2))]).write.format("delta").saveAsTable(name)
    assert refresh_daily_activity(spark, **args).event_dates is None  # first refresh
    silver_events([event(2, days_before(1))]).write.format("delta").mode("append").saveAsTable(name)
    assert refresh_daily_activity(spark, **args).event_dates is None
    assert "change data feed" in capsys.readouterr().out
    assertDataFrameEqual(
        spark.table(f"{schema_name}.user_daily_activity"), daily_activity(spark.table(name))
    )

    # Rows of the activity changed by hand after the refresh: its record cannot be trusted.
    activity = f"{schema_name}.user_daily_activity"
    spark.sql(f"DELETE FROM {activity} WHERE user_id = 2")
    assert refresh_daily_activity(spark, **args).event_dates is None
    assert "was changed by DELETE" in capsys.readouterr().out
    assertDataFrameEqual(spark.table(activity), daily_activity(spark.table(name)))

    # Created again with as many commits: the recorded version exists, its timestamp differs.
    spark.sql(f"DROP TABLE {name}")
    silver_events([event(5, days_before(1))]).write.format("delta").saveAsTable(name)
    silver_events([event(6, days_before(1))]).write.format("delta").mode("append").saveAsTable(name)
    assert refresh_daily_activity(spark, **args).event_dates is None
    build_features(spark, start=DS, end=DS, **args)
    _assert_activity_and_features_follow_silver(spark, schema_name, DS)
    users = sorted(r["user_id"] for r in spark.table(f"{schema_name}.user_features").collect())
    assert users == [5, 6]
