"""The feature pipeline over generated days, through the job entry points: a rerun of any job
leaves every table identical, any order of dates gives the sequential tables, and the bulk
mode gives the day-by-day tables."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from build_silver_events import main as silver_main
from build_user_features import main as features_main
from generate_events import main as generate_main
from ingest_events import main as ingest_main
from load_history import main as history_main
from publish_online_features import main as online_main
from pyspark.testing import assertDataFrameEqual

pytestmark = pytest.mark.spark

START = date(2019, 10, 1)
DAYS = [(START + timedelta(days=i)).isoformat() for i in range(8)]
HORIZON = "3"  # short, so labels close inside the range
TABLES = ("events", "user_daily_activity", "user_features", "user_labels")


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw") / "landing" / "events"
    generate_main(
        [
            "--start-date",
            DAYS[0],
            "--days",
            str(len(DAYS)),
            "--landing-dir",
            str(folder),
            "--users",
            "120",
            "--events-per-day",
            "600",
            "--seed",
            "3",
        ]
    )
    return str(folder)


@pytest.fixture(scope="module")
def bronze(landing):
    schema = "days_bronze"
    for ds in DAYS:
        argv = ["--ds", ds, "--catalog", "spark_catalog", "--landing-dir", landing]
        ingest_main([*argv, "--bronze-schema", schema])
    return schema


def _silver(bronze: str, silver: str, ds: str) -> None:
    silver_main(
        [
            "--ds",
            ds,
            "--catalog",
            "spark_catalog",
            "--bronze-schema",
            bronze,
            "--silver-schema",
            silver,
        ]
    )


def _features(silver: str, *range_args: str) -> None:
    features_main(
        [
            *range_args,
            "--catalog",
            "spark_catalog",
            "--silver-schema",
            silver,
            "--label-horizon-days",
            HORIZON,
        ]
    )


def _snapshot(spark, schema: str) -> dict:
    return {t: spark.table(f"{schema}.{t}").collect() for t in TABLES}


@pytest.fixture(scope="module")
def sequential(spark, bronze):
    schema = "days_sequential"
    for ds in DAYS:
        _silver(bronze, schema, ds)
        _features(schema, "--ds", ds)
    return schema


def test_the_sequential_run_has_features_and_closed_labels(spark, sequential):
    features = spark.table(f"{sequential}.user_features")
    assert {r[0].isoformat() for r in features.select("feature_date").distinct().collect()} == set(
        DAYS
    )
    labels = spark.table(f"{sequential}.user_labels")
    closed = sorted(r[0].isoformat() for r in labels.select("feature_date").distinct().collect())
    assert closed == DAYS[: len(DAYS) - int(HORIZON)]
    assert 0 < labels.where("purchased = 1").count() < labels.count()


def test_rerunning_every_job_of_a_date_leaves_every_table_identical(spark, bronze, sequential):
    before = _snapshot(spark, sequential)
    ds = DAYS[5]
    _silver(bronze, sequential, ds)
    _features(sequential, "--ds", ds)
    for table, rows in before.items():
        assertDataFrameEqual(spark.table(f"{sequential}.{table}"), rows)


def test_dates_in_any_order_give_the_sequential_tables(spark, bronze, sequential):
    schema = "days_shuffled"
    order = DAYS[:]
    random.Random(11).shuffle(order)
    for ds in order:
        _silver(bronze, schema, ds)
    random.Random(12).shuffle(order)
    for ds in order:
        _features(schema, "--ds", ds)
    for table, rows in _snapshot(spark, sequential).items():
        assertDataFrameEqual(spark.table(f"{schema}.{table}"), rows)


def test_bulk_mode_gives_the_day_by_day_tables(spark, bronze, sequential):
    schema = "days_bulk"
    for ds in DAYS:
        _silver(bronze, schema, ds)
    _features(schema, "--start-ds", DAYS[0], "--end-ds", DAYS[-1])
    for table, rows in _snapshot(spark, sequential).items():
        if table != "user_labels":
            assertDataFrameEqual(spark.table(f"{schema}.{table}"), rows)
    # Labels equal too, except the run date that closed them (one bulk run vs. each day's).
    columns = ["user_id", "feature_date", "horizon_days", "purchased", "purchases"]
    assertDataFrameEqual(
        spark.table(f"{schema}.user_labels").select(*columns),
        spark.table(f"{sequential}.user_labels").select(*columns),
    )


def test_the_history_load_gives_the_tables_of_the_daily_jobs(spark, landing, bronze, sequential):
    """One load_history job over the range = ingest + silver + features run date by date."""
    schemas = {"--bronze-schema": "history_bronze", "--silver-schema": "history_silver"}
    history_main(
        [
            "--start-ds",
            DAYS[0],
            "--end-ds",
            DAYS[-1],
            "--catalog",
            "spark_catalog",
            "--landing-dir",
            landing,
            "--label-horizon-days",
            HORIZON,
            *[v for pair in schemas.items() for v in pair],
        ]
    )
    for table in ("events", "events_quarantine", "events_ingest_log"):
        assertDataFrameEqual(
            spark.table(f"history_bronze.{table}"), spark.table(f"{bronze}.{table}")
        )
    for table, rows in _snapshot(spark, sequential).items():
        if table != "user_labels":
            assertDataFrameEqual(spark.table(f"history_silver.{table}"), rows)
    columns = ["user_id", "feature_date", "horizon_days", "purchased", "purchases"]
    assertDataFrameEqual(
        spark.table("history_silver.user_labels").select(*columns),
        spark.table(f"{sequential}.user_labels").select(*columns),
    )


def test_online_table_after_the_days_holds_each_users_latest_row(spark, sequential):
    gold = "days_gold"
    for ds in DAYS:
        run_ts = f"{date.fromisoformat(ds) + timedelta(days=1)}T00:00:00+00:00"
        argv = [
            "--ds",
            ds,
            "--catalog",
            "spark_catalog",
            "--silver-schema",
            sequential,
            "--gold-schema",
            gold,
        ]
        online_main([*argv, "--run-ts", run_ts])
        online_main([*argv, "--check-skew"])
    online = spark.table(f"{gold}.user_features_online")
    latest = spark.sql(
        f"SELECT user_id, max(feature_date) AS feature_date FROM {sequential}.user_features "
        "GROUP BY user_id"
    )
    assertDataFrameEqual(online.select("user_id", "feature_date"), latest)


def test_the_jobs_refuse_bad_arguments_with_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        features_main(["--ds", DAYS[0], "--start-ds", DAYS[0], "--catalog", "spark_catalog"])
    assert exit_info.value.code == 2
    assert "either --ds or both --start-ds and --end-ds" in capsys.readouterr().err
    with pytest.raises(
        SystemExit, match=r"range ends \(2019-10-01\) before it starts \(2019-10-05\)"
    ):
        features_main(["--start-ds", "2019-10-05", "--end-ds", "2019-10-01", "--catalog", "c"])
    with pytest.raises(SystemExit) as exit_info:
        online_main(["--ds", DAYS[0], "--catalog", "spark_catalog"])
    assert "publishing needs --run-ts" in capsys.readouterr().err
