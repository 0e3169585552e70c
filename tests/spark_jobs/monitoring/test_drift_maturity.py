"""The drift job compares mature feature dates only, on generated data through the real jobs.

Fifty-five days of synthetic click-stream (from 2019-09-01) go through the ingest parser and
silver's dedup into ``silver.events`` (whose first ingest date is the data start) and through
``compute_features`` into ``silver.user_features``. The champion's training window starts 20
days into the data, so its first 9 feature dates have truncated 30-day windows:

* stable data: the job skips those dates (saying so) and finds no drift, while the same
  comparison with the immature dates kept flags drift, led by ``tenure_days`` (the check can
  fail, and maturity is why it does not);
* a behaviour change injected after the reference is found on mature dates, for the columns the
  scenario moves (carts, purchases and their ratios), not ``tenure_days``;
* a side without any mature date is ``insufficient_data`` with the reason: never drift.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import mlflow
import pytest
from pyspark.sql import functions as F

from clickstream.core.contracts import USER_FEATURES, write_partition
from clickstream.monitoring.drift import DriftConfig, bounded_sample, detect_drift, feature_rows
from clickstream.monitoring.drift_report import STATTEST_THRESHOLD, compare
from clickstream.pipeline.features import compute_features
from clickstream.sources.synthetic import Drift, build_world, generate_day, to_csv
from ecom_airflow.config import LOCAL
from local.simulations.drift_year import Month, register_champion, silver_events

pytestmark = pytest.mark.spark

DATA_START = date(2019, 9, 1)
FIRST_MATURE = DATA_START + timedelta(days=29)  # 2019-09-30


def day(offset: int) -> date:
    return DATA_START + timedelta(days=offset)


TRAIN = (day(20), day(33))  # 9 immature dates (09-21..09-29), then 5 mature ones
STABLE = (day(34), day(40))
DRIFT_START = day(41)  # behaviour_change at full magnitude
DRIFTED = (day(48), day(54))  # 7-day windows fully drifted, 30-day windows partly
IMMATURE_TRAIN = (day(5), day(18))  # a champion trained on immature dates only
DAYS = 55
USERS, EVENTS_PER_DAY = 600, 4000  # make run's events per user


@pytest.fixture(scope="module")
def generated(spark, tracking, spark_codegen, tmp_path_factory):
    """Silver events and features of the 55 days in a fresh schema, two champions."""
    workdir = tmp_path_factory.mktemp("drift_maturity")
    world = build_world(3, USERS)
    drift = Drift("behaviour_change", DRIFT_START, 1.0)
    landing = workdir / "landing"
    landing.mkdir()
    files = []
    for offset in range(DAYS):
        path = landing / f"{day(offset)}.csv"
        path.write_bytes(to_csv(generate_day(world, 3, day(offset), EVENTS_PER_DAY, drift)))
        files.append(str(path))
    schema = f"t_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA {schema}")
    with spark_codegen():
        silver = silver_events(spark, files, landing)
        try:
            silver.write.format("delta").saveAsTable(f"{schema}.events")
            rows = compute_features(
                silver, IMMATURE_TRAIN[0].isoformat(), day(DAYS - 1).isoformat()
            )
            since = f"feature_date >= DATE'{IMMATURE_TRAIN[0]}'"
            write_partition(spark, rows, USER_FEATURES, "spark_catalog", since, schema)
        finally:
            silver.unpersist()
    experiment = f"/test/drift-maturity-{uuid.uuid4().hex[:6]}"
    mlflow.create_experiment(experiment, artifact_location=str(workdir / "artifacts"))
    models = {}
    for key, window in (("partly", TRAIN), ("immature", IMMATURE_TRAIN)):
        models[key] = f"propensity_{uuid.uuid4().hex[:8]}"
        register_champion(experiment, models[key], Month(0, "none", day(0), *window))
    return {"schema": schema, "experiment": experiment, "models": models, "dir": workdir}


def _config(generated, window, model: str = "partly", name: str = "x") -> DriftConfig:
    """The job as the DAG runs it locally: the configured thresholds and row bounds."""
    return DriftConfig(
        start=window[0].isoformat(),
        end=window[1].isoformat(),
        catalog="spark_catalog",
        model_name=generated["models"][model],
        experiment=generated["experiment"],
        output=str(generated["dir"] / name / "feature_drift"),
        silver_schema=generated["schema"],
        gold_schema=generated["schema"],
        monitoring_schema=generated["schema"],
        drift_share=LOCAL.drift_share,
        min_rows=LOCAL.drift_min_rows,
        max_rows=LOCAL.drift_max_rows,
    )


def test_an_immature_reference_is_skipped_and_stable_data_is_no_drift(spark, generated, capsys):
    summary = detect_drift(spark, _config(generated, STABLE, name="stable"))
    out = capsys.readouterr().out
    assert summary["status"] == "no_drift", summary["drifted_columns"]
    assert summary["reason"] is None and summary["drift_share"] < summary["threshold"]
    assert "tenure_days" not in summary["drifted_columns"]
    maturity = summary["maturity"]
    assert (maturity["data_start"], maturity["first_mature"]) == (
        DATA_START.isoformat(),
        FIRST_MATURE.isoformat(),
    )
    assert maturity["reference"]["skipped_days"] == 9
    assert (maturity["reference"]["compared_start"], maturity["reference"]["compared_end"]) == (
        FIRST_MATURE.isoformat(),
        TRAIN[1].isoformat(),
    )
    assert maturity["current"]["skipped_days"] == 0 and maturity["current"]["note"] is None
    note = (
        f"maturity: the reference window {TRAIN[0]}..{TRAIN[1]}: skipped 9 immature feature "
        f"date(s) {TRAIN[0]}..{FIRST_MATURE - timedelta(days=1)}"
    )
    assert note in out
    written = json.loads((generated["dir"] / "stable" / "feature_drift.json").read_text())
    assert written["maturity"] == maturity
    # Only the mature reference rows were compared.
    mature_rows = feature_rows(
        spark, "spark_catalog", generated["schema"], FIRST_MATURE.isoformat(), TRAIN[1].isoformat()
    )
    assert summary["reference"]["rows"] == mature_rows.count()


def test_the_same_check_with_the_immature_dates_kept_would_flag_drift(spark, generated):
    """What the job did before maturity: the immature dates against the same stable month."""
    schema = ("spark_catalog", generated["schema"])
    immature = feature_rows(spark, *schema, TRAIN[0].isoformat(), day(28).isoformat())
    current = feature_rows(spark, *schema, STABLE[0].isoformat(), STABLE[1].isoformat())
    result = compare(
        bounded_sample(immature, LOCAL.drift_max_rows, 0),
        bounded_sample(current, LOCAL.drift_max_rows, 0),
        LOCAL.drift_share,
        scores=False,
        column_threshold=STATTEST_THRESHOLD,
    )
    assert result.drift_share >= LOCAL.drift_share
    assert result.columns["tenure_days"]["drifted"] is True
    assert result.columns["tenure_days"]["score"] > 1.0  # truncated: far from a full window


def test_a_behaviour_change_is_found_on_mature_dates(spark, generated):
    summary = detect_drift(spark, _config(generated, DRIFTED, name="drifted"))
    assert summary["status"] == "drift", summary["columns"]
    drifted = set(summary["drifted_columns"])
    assert {"carts_7d", "view_to_cart_7d", "cart_to_purchase_7d"} & drifted
    assert "tenure_days" not in drifted
    assert summary["maturity"]["reference"]["skipped_days"] == 9


def test_a_side_without_a_mature_date_is_insufficient_data(spark, generated, capsys):
    summary = detect_drift(spark, _config(generated, STABLE, "immature", name="immature_ref"))
    out = capsys.readouterr().out
    assert summary["status"] == "insufficient_data" and summary["sufficient"] is False
    assert summary["drift_share"] is None and summary["drifted_columns"] == []
    reason = (
        f"the reference window {IMMATURE_TRAIN[0]}..{IMMATURE_TRAIN[1]} has no mature feature "
        f"date: the data begins on {DATA_START}, so the first date whose 30-day window lies "
        f"inside the data is {FIRST_MATURE}: nothing compared"
    )
    assert summary["reason"] == reason and summary["reference"]["rows"] == 0
    assert f"maturity: the reference window {IMMATURE_TRAIN[0]}..{IMMATURE_TRAIN[1]} has no" in out
    page = (generated["dir"] / "immature_ref" / "feature_drift.html").read_text()
    assert "has no mature feature date" in page
    # The current period too: its dates are all before the first mature date.
    early = (day(21), day(27))
    summary = detect_drift(spark, _config(generated, early, name="immature_cur"))
    assert summary["status"] == "insufficient_data"
    assert summary["reason"].startswith(f"the current window {early[0]}..{early[1]} has no")
    rows = spark.table(f"{generated['schema']}.drift_metrics").where(
        F.col("period_start") == F.lit(early[0].isoformat()).cast("date")
    )
    assert [(r["status"], r["drifted"]) for r in rows.collect()] == [("insufficient_data", None)]
