"""The Great Expectations data-quality job on Spark + Delta: suites, gate summary, report.

One module-wide set of tables (bronze by the real ingest, silver and features by the real
jobs), with one logical date per scenario, so Spark and GE start once for all tests.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from validate_data import main as validate_main

from clickstream.pipeline.features import build_features
from clickstream.pipeline.silver import build_silver_events
from clickstream.quality.checks import silver_checks
from clickstream.quality.inputs import QualityError
from clickstream.quality.report import render
from clickstream.quality.results import DQ_RESULTS, summarise
from clickstream.quality.validation import evaluate, run
from tests.support.landing import CATALOG, ROWS_PER_DAY, land_bronze, landing_lines

pytestmark = pytest.mark.spark

HISTORY = ("2019-10-01", "2019-10-02", "2019-10-03")
CLEAN = "2019-10-04"  # three days of history before it
TEN_X = "2019-10-05"  # ten times the usual volume
QUARANTINE = "2019-10-06"  # 4 bad lines of 44: share 0.091
PRICEY = "2019-10-07"  # one absurd price
UNKNOWN_TYPE = "2019-10-08"  # one event of an unknown type landed in bronze
NO_HISTORY = "2019-09-20"  # nothing before it
MISSING = "2019-11-30"  # never ingested


def _with_unknown_type(parsed):
    """An unknown event type cannot get through the ingest's parsing (it is quarantined), so the
    one of ``UNKNOWN_TYPE`` is set after parsing, as a broken writer would have landed it."""
    unknown = (F.col("ingest_date") == F.lit(UNKNOWN_TYPE).cast("date")) & (
        F.col("product_id") == 1003
    )
    return parsed.withColumn("event_type", F.when(unknown, "click").otherwise(F.col("event_type")))


@pytest.fixture(scope="module")
def env(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    base = f"dq_{uuid.uuid4().hex[:8]}"
    schemas = {"bronze": f"{base}_b", "silver": f"{base}_s", "monitoring": f"{base}_m"}
    days = {ds: landing_lines(ds) for ds in (*HISTORY, CLEAN, NO_HISTORY, UNKNOWN_TYPE)}
    days[TEN_X] = landing_lines(TEN_X, 10 * ROWS_PER_DAY)
    bad = ["   ", "2019-10-06 00:00:02 UTC,click,1,2,,x,1.00,5,s", "a,b", "x"]
    days[QUARANTINE] = [*landing_lines(QUARANTINE), *bad]
    days[PRICEY] = [landing_lines(PRICEY, 1, price="250000.00")[0], *landing_lines(PRICEY)[1:]]
    land_bronze(spark, days, schemas["bronze"], edit=_with_unknown_type)
    build_silver_events(
        spark,
        ds=CLEAN,
        catalog=CATALOG,
        bronze_schema=schemas["bronze"],
        silver_schema=schemas["silver"],
    )
    build_features(spark, start=CLEAN, end=CLEAN, catalog=CATALOG, silver_schema=schemas["silver"])
    return {"root": root, **schemas}


def _run(spark, env, ds, suites=("bronze_events",), **kwargs):
    output = str(env["root"] / "reports" / ds / "_".join(suites))
    return run(
        spark,
        ds=ds,
        catalog=CATALOG,
        suites=list(suites),
        output=output,
        bronze_schema=env["bronze"],
        silver_schema=env["silver"],
        monitoring_schema=env["monitoring"],
        airflow_run_id="test-run",
        log=lambda _: None,
        **kwargs,
    )


@pytest.fixture(scope="module")
def validated(spark, env):
    """``validated(ds, suites)``: the (summary, outcomes) of that run, run once per module."""
    cache = {}

    def get(ds, suites=("bronze_events",)):
        if (ds, suites) not in cache:
            cache[ds, suites] = _run(spark, env, ds, suites)
        return cache[ds, suites]

    return get


def _results(spark, env, ds):
    return spark.table(DQ_RESULTS.name(CATALOG, env["monitoring"])).where(f"ds = '{ds}'")


ALL = ("bronze_events", "silver_events", "user_features")


def test_clean_day_passes_every_suite(spark, env, validated):
    summary, outcomes = validated(CLEAN, ALL)
    assert summary["success"] is True, summary
    assert summary["blocking_failures"] == [] and summary["warnings"] == []
    assert summary["suites"] == list(ALL)
    counts = summary["counts"]
    assert counts["evaluated"] == len(outcomes) == counts["passed"]
    assert counts["skipped"] == counts["blocking_failed"] == counts["warning_failed"] == 0
    [volume] = [o for o in outcomes if o.column == "volume_ratio"]
    assert volume.status == "passed"
    assert volume.observed == "volume ratio 1 (40 rows / median 40 of 3 days)"
    # Both severities come back from GE's own severity field.
    assert {o.severity for o in outcomes} == {"blocking", "warning"}
    stored = _results(spark, env, CLEAN)
    assert stored.count() == len(outcomes)
    assert {r["suite"] for r in stored.select("suite").distinct().collect()} == set(ALL)


def test_summary_file_has_the_gate_keys(env, validated):
    summary, _ = validated(CLEAN, ALL)
    prefix = env["root"] / "reports" / CLEAN / "_".join(ALL)
    assert json.loads(prefix.with_suffix(".json").read_text()) == summary
    assert list(summary) == [
        "ds",
        "suites",
        "success",
        "blocking_failures",
        "warnings",
        "counts",
        "report",
        "table",
    ]
    assert list(summary["counts"]) == [
        "evaluated",
        "passed",
        "blocking_failed",
        "warning_failed",
        "skipped",
    ]
    assert summary["ds"] == CLEAN
    assert summary["report"] == f"{prefix}.html"
    assert summary["table"] == f"{CATALOG}.{env['monitoring']}.dq_results"


def test_unknown_event_type_blocks_and_is_named(validated):
    summary, _ = validated(UNKNOWN_TYPE)
    assert summary["success"] is False
    assert summary["blocking_failures"] == [
        {
            "suite": "bronze_events",
            "expectation": "expect_column_values_to_be_in_set",
            "column": "event_type",
            "observed": "1 of 40 rows not in the set (2.50%), e.g. 'click'",
            "expected": "in {view, cart, remove_from_cart, purchase}",
        }
    ]


def test_null_user_id_blocks(spark, env):
    # Bronze and silver declare user_id NOT NULL, so such rows can only be a frame in memory.
    rows = (
        spark.table(f"{env['silver']}.events")
        .where(F.col("event_date") == F.lit(CLEAN).cast("date"))
        .withColumn("user_id", F.when(F.col("product_id") != 1007, F.col("user_id")))
    )
    outcomes = evaluate("silver_events", silver_checks(), {"rows": rows})
    summary = summarise(CLEAN, ["silver_events"], outcomes, "r.html", "t")
    assert summary["success"] is False
    assert summary["blocking_failures"] == [
        {
            "suite": "silver_events",
            "expectation": "expect_column_values_to_not_be_null",
            "column": "user_id",
            "observed": "1 of 40 rows null (2.50%)",
            "expected": "no null",
        }
    ]


def test_schema_drift_blocks_and_a_check_on_a_missing_column_reports_the_error(spark, env):
    rows = (
        spark.table(f"{env['silver']}.events")
        .where(F.col("event_date") == F.lit(CLEAN).cast("date"))
        .drop("user_id")
        .withColumn("extra", F.lit(1))
    )
    outcomes = evaluate("silver_events", silver_checks(), {"rows": rows})
    failed = {(o.expectation, o.column): o for o in outcomes if o.status == "failed"}
    assert set(failed) == {
        ("expect_table_columns_to_match_set", None),
        ("expect_column_values_to_not_be_null", "user_id"),
    }
    schema = failed["expect_table_columns_to_match_set", None]
    assert schema.observed == "missing: user_id; unexpected: extra"
    error = failed["expect_column_values_to_not_be_null", "user_id"]
    assert error.severity == "blocking"
    assert error.observed.startswith("error: ") and "user_id" in error.observed


def test_price_out_of_range_is_a_warning_only(validated):
    summary, _ = validated(PRICEY)
    assert summary["success"] is True
    assert summary["blocking_failures"] == []
    assert summary["warnings"] == [
        {
            "suite": "bronze_events",
            "expectation": "expect_column_values_to_be_between",
            "column": "price",
            "observed": "1 of 40 rows out of range (2.50%), e.g. 250000.00",
            "expected": "0 <= price <= 100000 for every row",
        }
    ]


def test_quarantine_share_above_threshold_blocks(validated):
    summary, _ = validated(QUARANTINE)
    assert summary["success"] is False
    [blocking] = summary["blocking_failures"]
    assert blocking["column"] == "quarantine_share"
    assert blocking["observed"] == "quarantine share 0.09091 (4 of 44 lines)"
    assert blocking["expected"] == "<= 0.05"
    # The warning tier (1%) fails as well, and is reported as a warning.
    assert [(w["column"], w["expected"]) for w in summary["warnings"]] == [
        ("quarantine_share", "<= 0.01")
    ]


def test_volume_check_is_skipped_without_history(spark, env, validated):
    summary, outcomes = validated(NO_HISTORY)
    assert summary["success"] is True
    assert summary["counts"]["skipped"] == 1
    assert summary["counts"]["evaluated"] == len(outcomes) - 1
    [skipped] = [o for o in outcomes if o.status == "skipped"]
    assert skipped.column == "volume_ratio" and skipped.severity == "blocking"
    assert skipped.observed.startswith("insufficient history: 0 day(s) of bronze")
    [row] = _results(spark, env, NO_HISTORY).where("status = 'skipped'").collect()
    assert row["success"] is None


def test_rerun_leaves_identical_results(spark, env, validated):
    validated(QUARANTINE)
    validated(NO_HISTORY)
    table = DQ_RESULTS.name(CATALOG, env["monitoring"])
    before = spark.table(table).collect()
    _run(spark, env, QUARANTINE)
    assertDataFrameEqual(spark.table(table), before)
    days = {r["ds"] for r in before}
    assert {date.fromisoformat(QUARANTINE), date.fromisoformat(NO_HISTORY)} <= days


def test_report_is_self_contained_and_names_the_failure(env, validated):
    summary, _ = validated(QUARANTINE)
    page = (env["root"] / "reports" / QUARANTINE / "bronze_events.html").read_text()
    assert summary["report"].endswith("bronze_events.html")
    assert not re.search(r"https?:|src=|href=|@import|url\(|<script|<link|<img", page, re.I)
    assert "<style>" in page
    assert "FAILED (blocking)" in page
    assert "expect_column_max_to_be_between" in page and "quarantine_share" in page
    assert "quarantine share 0.09091 (4 of 44 lines)" in page
    assert QUARANTINE in page and "bronze_events" in page


def test_report_escapes_values():
    page = render(
        ds=CLEAN,
        suites=["s"],
        status="FAILED (blocking)",
        counts={"evaluated": 1},
        rows=[
            dict.fromkeys(("expectation", "column", "observed", "expected"), "<b>&'")
            | {"suite": "s", "severity": "blocking", "status": "failed"}
        ],
    )
    assert "<b>" not in page and "&lt;b&gt;&amp;&#x27;" in page


def test_missing_partition_or_table_fails_clearly(spark, env):
    with pytest.raises(
        QualityError,
        match=rf"events has no rows for ingest_date {MISSING} "
        rf".*run ingest_events for {MISSING} first",
    ):
        _run(spark, env, MISSING)
    with pytest.raises(
        QualityError,
        match=rf"user_features has no rows for feature_date "
        rf"{PRICEY}: run build_user_features for {PRICEY} first",
    ):
        _run(spark, env, PRICEY, ("user_features",))
    without_silver = {**env, "silver": f"nope_{uuid.uuid4().hex[:6]}"}
    with pytest.raises(QualityError, match=r"events does not exist.*run build_silver_events"):
        _run(spark, without_silver, CLEAN, ("silver_events",))


def test_cli_ten_times_the_volume_blocks_but_exits_zero(spark, env, monkeypatch, capsys):
    monkeypatch.setenv("LOCAL_VOLUMES_ROOT", str(env["root"] / "volumes"))
    output = f"/Volumes/ecom/raw/reports/data_quality_validation/{TEN_X}/bronze_events"
    args = [
        "--ds",
        TEN_X,
        "--catalog",
        CATALOG,
        "--suite",
        "bronze_events",
        "--output",
        output,
        "--bronze-schema",
        env["bronze"],
        "--monitoring-schema",
        env["monitoring"],
        "--airflow-run-id",
        "manual__x",
    ]
    assert validate_main(args) == 0
    local = env["root"] / "volumes" / "ecom/raw/reports/data_quality_validation" / TEN_X
    summary = json.loads((local / "bronze_events.json").read_text())
    assert (local / "bronze_events.html").is_file()
    assert summary["report"] == f"{output}.html"
    assert summary["success"] is False
    [blocking] = summary["blocking_failures"]
    assert blocking["column"] == "volume_ratio"
    assert blocking["observed"] == "volume ratio 10 (400 rows / median 40 of 4 days)"
    out = capsys.readouterr().out
    assert "BLOCKING: bronze_events: expect_column_max_to_be_between(volume_ratio)" in out
    assert "status FAILED (blocking)" in out
    runs = _results(spark, env, TEN_X).select("airflow_run_id").distinct().collect()
    assert [r["airflow_run_id"] for r in runs] == ["manual__x"]

    missing = [args[0], MISSING, *args[2:]]
    with pytest.raises(SystemExit, match=rf"validate_data failed: .*{MISSING}.*ingest_events"):
        validate_main(missing)
