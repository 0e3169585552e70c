"""The rules of table maintenance without Spark: the keys against the table contracts, the
retention a table keeps for its pinned versions, the table properties that carry it and the
OPTIMIZE statements of each kind of table."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clickstream.core.catalog import CONTRACTS
from clickstream.core.jobs import JobError
from clickstream.maintenance.keys import TABLES
from clickstream.maintenance.pins import Pin, model_name
from clickstream.maintenance.tables import (
    DELETED_FILE_RETENTION,
    LOG_RETENTION,
    Retention,
    _retention_properties,
    optimize_statements,
    parse_interval,
    retention_for,
    shown,
)

HOUR_MS = 3_600_000
NOW = 1_000 * HOUR_MS
KEYS = {(k.schema, k.table): k for k in TABLES}


def test_every_contract_table_has_its_maintenance_keys_once():
    assert len(KEYS) == len(TABLES), "a table is listed twice"
    contracts = {(c.schema, c.table) for c in CONTRACTS}
    assert set(KEYS) == contracts, (
        f"missing from clickstream/maintenance/keys.py: {sorted(contracts - set(KEYS))}; "
        f"not a contract: {sorted(set(KEYS) - contracts)}"
    )


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: f"{c.schema}.{c.table}")
def test_each_key_is_a_column_and_not_a_partition_or_a_clustered_table(contract):
    keys = KEYS[contract.schema, contract.table]
    assert keys.read_by, "say how the table is read: that is what chose the key"
    for column in keys.zorder_by:
        assert column in contract.names, column
        assert column not in contract.partitioned_by, f"{column}: partitions prune already"
    if contract.clustered_by:
        assert keys.zorder_by == (), "a liquid-clustered table is clustered by OPTIMIZE itself"


def test_the_tables_read_by_user_are_zordered_by_user_id():
    for table in ("events", "user_daily_activity", "user_features", "user_labels"):
        assert KEYS["silver", table].zorder_by == ("user_id",), table


def _pin(version: int, holder: str = "m v1") -> Pin:
    return Pin("c.silver.events", version, holder)


COMMITS = {0: NOW - 100 * HOUR_MS, 1: NOW - 50 * HOUR_MS, 2: NOW - 10 * HOUR_MS, 3: NOW}


def test_without_a_pin_the_configured_retention_is_kept():
    kept = retention_for(timedelta(hours=24), [], COMMITS, now_ms=NOW, margin=timedelta(days=8))
    assert kept == Retention(timedelta(hours=24), timedelta(hours=24))


def test_the_oldest_pin_raises_the_retention_to_its_age_plus_the_margin():
    pins = [_pin(2, "m v2"), _pin(1, "m v1"), _pin(3, "m v3")]
    kept = retention_for(timedelta(hours=24), pins, COMMITS, now_ms=NOW, margin=timedelta(hours=8))
    assert kept.duration == timedelta(hours=58)
    assert kept.kept == (
        "v1 for m v1, committed 2 d 2 h ago",
        "v2 for m v2, committed 10 h ago",
        "v3 for m v3, committed 0 s ago",
    )
    assert kept.lost == ()


def test_a_pin_younger_than_the_retention_changes_nothing():
    kept = retention_for(timedelta(hours=24), [_pin(2)], COMMITS, now_ms=NOW, margin=timedelta(0))
    assert kept.duration == timedelta(hours=24)


def test_a_pin_the_table_no_longer_has_is_reported_lost_not_dropped():
    commits = {5: NOW - HOUR_MS, 6: NOW}  # versions 0..4 left the log
    kept = retention_for(
        timedelta(hours=2), [_pin(3), _pin(9)], commits, now_ms=NOW, margin=timedelta(0)
    )
    assert kept.duration == timedelta(hours=2)
    assert kept.kept == ()
    assert kept.lost[0].startswith("v3 for m v1: no longer in the table's log")
    assert kept.lost[1].startswith("v9 for m v1: the table is at v6, so it was created again")


@pytest.mark.parametrize(
    ("duration", "kept_for", "interval"),
    [
        (timedelta(0), timedelta(0), "interval 0 seconds"),
        (timedelta(seconds=1.2), timedelta(seconds=2), "interval 2 seconds"),
        (timedelta(hours=1), timedelta(hours=1), "interval 1 hours"),
        (timedelta(days=30), timedelta(days=30), "interval 30 days"),
        (timedelta(days=9, minutes=1), timedelta(days=9, hours=1), "interval 217 hours"),
    ],
)
def test_the_retention_is_rounded_up_never_down(duration, kept_for, interval):
    retention = Retention(duration, duration)
    assert retention.kept_for == kept_for
    assert retention.interval == interval
    assert parse_interval(interval) == kept_for


def test_the_log_retention_is_raised_only_when_the_file_retention_passes_it():
    month = Retention(timedelta(days=30), timedelta(days=30))
    assert _retention_properties("t", month, {}) == {DELETED_FILE_RETENTION: "interval 30 days"}
    longer = Retention(timedelta(days=45), timedelta(days=30))
    assert _retention_properties("t", longer, {}) == {
        DELETED_FILE_RETENTION: "interval 45 days",
        LOG_RETENTION: "interval 45 days",
    }
    # A longer log retention set by hand is kept; a property already right is not set again.
    assert (
        _retention_properties(
            "t",
            longer,
            {LOG_RETENTION: "interval 90 days", DELETED_FILE_RETENTION: "interval 45 days"},
        )
        == {}
    )
    with pytest.raises(JobError, match=r"cannot read delta.logRetentionDuration='forever'"):
        _retention_properties("t", longer, {LOG_RETENTION: "forever"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interval 30 days", timedelta(days=30)),
        ("INTERVAL 1 WEEK", timedelta(weeks=1)),
        ("interval 168 hours", timedelta(hours=168)),
        ("30 days", None),
        ("", None),
    ],
)
def test_delta_duration_properties_are_read(text, expected):
    assert parse_interval(text) == expected


def test_durations_are_shown_to_the_unit_that_matters():
    assert shown(timedelta(days=3, hours=4, minutes=5)) == "3 d 4 h"
    assert shown(timedelta(hours=5, minutes=12)) == "5 h 12 min"
    assert shown(timedelta(minutes=12)) == "12 min"
    assert shown(timedelta(seconds=40)) == "40 s"


EVENTS = KEYS["silver", "events"]
TYPES = {"event_date": "date", "user_id": "bigint"}


def test_zorder_covers_the_recent_partitions_and_compacts_the_older_ones():
    detail = {"partitionColumns": ["event_date"], "clusteringColumns": []}
    assert optimize_statements("c.s.events", EVENTS, detail, TYPES, "2019-10-20") == [
        "OPTIMIZE c.s.events WHERE event_date >= DATE'2019-10-20' ZORDER BY (user_id)",
        "OPTIMIZE c.s.events WHERE event_date < DATE'2019-10-20'",
    ]
    assert optimize_statements("c.s.events", EVENTS, detail, TYPES, None) == [
        "OPTIMIZE c.s.events ZORDER BY (user_id)"
    ]


def test_clustered_and_keyless_tables_are_compacted_only():
    clustered = {"partitionColumns": [], "clusteringColumns": ["user_id"]}
    assert optimize_statements("c.g.o", EVENTS, clustered, TYPES, "2019-10-20") == [
        "OPTIMIZE c.g.o"
    ]
    bronze = KEYS["bronze", "events"]
    detail = {"partitionColumns": ["ingest_date"], "clusteringColumns": []}
    assert optimize_statements("c.b.e", bronze, detail, {}, "2019-10-20") == ["OPTIMIZE c.b.e"]


def test_a_crafted_date_or_model_name_is_refused():
    detail = {"partitionColumns": ["event_date"], "clusteringColumns": []}
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        optimize_statements("c.s.e", EVENTS, detail, TYPES, "2019-10-20' OR '1'='1")
    with pytest.raises(ValueError, match="not a registered model name"):
        model_name("m' OR name LIKE '%")
    assert model_name("ecom_prod.ml.propensity") == "ecom_prod.ml.propensity"
