"""The drift-detection job on real Spark, Delta and MLflow: a tiny registered champion names its
training window; feature rows are written straight into a Delta table with the feature contract.
Same distribution -> no drift, a strong shift -> drift naming the shifted columns, too few rows
-> insufficient data, no champion -> a one-line failure; reruns replace the period's metrics."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from datetime import date

import mlflow
import pytest
from detect_drift import main as drift_main
from mlflow import MlflowClient
from pyspark.sql import functions as F
from sklearn.dummy import DummyClassifier

from clickstream.core.contracts import FEATURE_COLUMNS, USER_FEATURES
from clickstream.core.jobs import JobError
from clickstream.models import registry
from clickstream.models.propensity.candidates import SKOPS_TRUSTED_TYPES
from clickstream.monitoring.drift import (
    DRIFT_METRICS,
    DriftConfig,
    bounded_sample,
    detect_drift,
    score_rows,
)
from clickstream.monitoring.drift_reference import champion_reference
from ecom_airflow.config import LOCAL, Environment
from tests.support.training_data import history_events

pytestmark = pytest.mark.spark

USERS = 300  # per feature date: 7 dates x 300 = 2100 rows per window, above --min-rows 1000
TRAIN = (date(2019, 9, 1), date(2019, 9, 7))  # the champion's training window (its run's tags)
SAME = (date(2019, 10, 1), date(2019, 10, 7))  # same distribution as the training window
SHIFTED = (date(2019, 11, 1), date(2019, 11, 7))  # 1d and 7d window features doubled
SMALL = (date(2019, 12, 1), date(2019, 12, 1))  # 100 rows: below --min-rows
DATA_START = date(2019, 8, 1)  # silver.events begins here: every window above is mature
SHIFTED_COLUMNS = [c for c in FEATURE_COLUMNS if c.endswith(("_1d", "_7d"))]  # 26 of 43
JSON_KEYS = {
    "period_start",
    "period_end",
    "status",
    "reason",
    "maturity",
    "drift_share",
    "threshold",
    "sufficient",
    "min_rows",
    "drifted_columns",
    "columns",
    "reference",
    "current",
    "scores",
    "last_drift_retraining",
    "report",
    "table",
}


def _window(spark, window, seed: int, *, shift: bool = False, users: int = USERS):
    """Feature rows of every date of ``window``, generated on Spark (seeded, one partition so
    the draws are the same on every run): each feature uniform on 0..6 (0..12 for a shifted
    one), 20% nulls where the contract allows them; with a score (uniform squared: mean 1/3;
    its square root when shifted: mean 2/3)."""
    days = (window[1] - window[0]).days + 1
    rows = spark.range(0, days * users, 1, 1).select(
        (F.col("id") % users + 1).alias("user_id"),
        F.date_add(
            F.lit(window[0].isoformat()).cast("date"), (F.col("id") / users).cast("int")
        ).alias("feature_date"),
    )
    nullable = {c.name for c in USER_FEATURES.columns if c.nullable}
    values = []
    for i, column in enumerate(USER_FEATURES.columns[2:]):
        high = 13 if shift and column.name in SHIFTED_COLUMNS else 7
        value = F.floor(F.rand(seed * 1000 + i) * high)
        if column.name in nullable:
            value = F.when(F.rand(seed * 1000 + 500 + i) >= 0.2, value)
        values.append(value.cast(column.type).alias(column.name))
    score = F.rand(seed * 1000 + 999)
    return rows.select("*", *values, (F.sqrt(score) if shift else score * score).alias("score"))


def _register_champion(experiment: str, name: str) -> tuple[str, str]:
    """A tiny model registered as ``train_models`` does: parent and candidate runs with the
    window tags, the candidate's model registered, then promoted to champion."""
    tags = {
        "train_window_start": TRAIN[0].isoformat(),
        "train_window_end": TRAIN[1].isoformat(),
        "logical_date": "2019-09-30",
        "reason": "schedule",
        "model_name": name,
    }
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name="propensity 2019-09-30", tags=tags):
        with mlflow.start_run(run_name="dummy", nested=True, tags=tags) as child:
            model = DummyClassifier(strategy="prior").fit([[0.0], [1.0]], [0, 1])
            info = mlflow.sklearn.log_model(
                model, name="model", skops_trusted_types=SKOPS_TRUSTED_TYPES
            )
    client = MlflowClient()
    version = registry.register_challenger(
        client, name, info.model_uri, child.info.run_id, {"candidate": "dummy", **tags}
    )
    registry.record_decision(client, name, version, promote=True, reason="test")
    return version, child.info.run_id


@pytest.fixture(scope="module")
def world(spark, tracking, tmp_path_factory):
    """Feature and score tables in a fresh schema, a champion and its experiment."""
    schema = f"t_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA {schema}")
    history_events(spark, schema, DATA_START)
    experiment = f"/test/drift-{uuid.uuid4().hex[:6]}"
    mlflow.create_experiment(experiment, artifact_location=str(tmp_path_factory.mktemp("art")))
    name = f"propensity_{uuid.uuid4().hex[:8]}"
    version, run_id = _register_champion(experiment, name)
    # A finished training triggered by drift: the cooldown input every summary reports.
    client = MlflowClient()
    drift_run = client.create_run(
        client.get_experiment_by_name(experiment).experiment_id,
        tags={"reason": "drift", "as_of": "2019-08-15", "logical_date": "2026-12-07"},
    )
    client.set_terminated(drift_run.info.run_id)

    # The champion scored its own training window (a backfill); the periods were scored too.
    windows = [
        _window(spark, TRAIN, 1),
        _window(spark, SAME, 2),
        _window(spark, SHIFTED, 3, shift=True),
        _window(spark, SMALL, 4, users=100),
    ]
    rows = windows[0].unionByName(windows[1]).unionByName(windows[2]).unionByName(windows[3])
    rows.select(*USER_FEATURES.names).write.format("delta").saveAsTable(f"{schema}.user_features")
    rows.where(F.col("feature_date") < F.lit(SMALL[0].isoformat()).cast("date")).select(
        "user_id",
        "score",
        F.lit(name).alias("model_name"),
        F.lit(version).alias("model_version"),
        F.lit("champion").alias("model_alias"),
        "feature_date",
        F.col("feature_date").alias("logical_date"),
        F.lit("scheduled__x").alias("airflow_run_id"),
        F.col("feature_date").alias("score_date"),
    ).write.format("delta").saveAsTable(f"{schema}.propensity_scores")
    return {
        "schema": schema,
        "experiment": experiment,
        "name": name,
        "version": version,
        "run_id": run_id,
    }


def _argv(world, window, output, monitoring: str, *extra: str) -> list[str]:
    # --drift-share as the DAG passes it: the environment's configured threshold.
    return [
        "--start-ds",
        window[0].isoformat(),
        "--end-ds",
        window[1].isoformat(),
        "--catalog",
        "spark_catalog",
        "--model-name",
        world["name"],
        "--experiment",
        world["experiment"],
        "--output",
        str(output),
        "--silver-schema",
        world["schema"],
        "--gold-schema",
        world["schema"],
        "--monitoring-schema",
        monitoring,
        "--airflow-run-id",
        "scheduled__drift",
        "--drift-share",
        str(LOCAL.drift_share),
        *extra,
    ]


def _config(world, window, output, monitoring: str, **options) -> DriftConfig:
    return DriftConfig(
        start=window[0].isoformat(),
        end=window[1].isoformat(),
        catalog="spark_catalog",
        model_name=world["name"],
        experiment=world["experiment"],
        output=str(output),
        silver_schema=world["schema"],
        gold_schema=world["schema"],
        monitoring_schema=monitoring,
        **options,
    )


def _assert_self_contained(text: str) -> None:
    """Nothing is fetched when the page opens: no external script, stylesheet, font or image."""
    assert re.search(r"<script[^>]*\ssrc=", text) is None
    assert re.search(r"<link[^>]*\shref=", text) is None
    assert re.search(r"<img[^>]*\ssrc=[\"']?https?:", text) is None
    assert re.search(r"url\(\s*[\"']?https?:", text) is None
    assert re.search(r"@import\s+(url\(|[\"'])", text) is None
    assert "data:font/ttf;base64," in text  # the icon font is inlined
    assert "window.drawDashboard(" in text  # Evidently's JavaScript and data are inlined


def _metrics(spark, monitoring: str, window) -> list:
    table = spark.table(DRIFT_METRICS.name("spark_catalog", monitoring))
    return sorted(
        table.where(F.col("period_start") == F.lit(window[0].isoformat()).cast("date")).collect(),
        key=lambda r: r["column_name"],
    )


def test_same_distribution_is_no_drift_and_a_rerun_replaces_the_period(
    spark, world, schema_name, tmp_path, capsys
):
    output = tmp_path / "reports" / "2019-10-01" / "feature_drift"
    assert drift_main(_argv(world, SMALL, tmp_path / "small", schema_name)) == 0
    assert drift_main(_argv(world, SAME, output, schema_name)) == 0
    out = capsys.readouterr().out
    assert "2019-10-01..2019-10-07: NO_DRIFT (drift share" in out
    assert (
        f"champion v{world['version']}" in out and "last drift retraining: as of 2019-08-15" in out
    )

    summary = json.loads(output.with_suffix(".json").read_text())
    assert set(summary) == JSON_KEYS
    assert summary["status"] == "no_drift" and summary["sufficient"] is True
    assert summary["reason"] is None
    # Both windows are mature (the data begins 2019-08-01): nothing skipped, nothing noted.
    assert summary["maturity"]["data_start"] == "2019-08-01"
    assert summary["maturity"]["first_mature"] == "2019-08-30"
    for side, window in (("reference", TRAIN), ("current", SAME)):
        assert summary["maturity"][side] == {
            "start": window[0].isoformat(),
            "end": window[1].isoformat(),
            "compared_start": window[0].isoformat(),
            "compared_end": window[1].isoformat(),
            "skipped_days": 0,
            "note": None,
        }
    assert "maturity:" not in out
    assert summary["threshold"] == LOCAL.drift_share  # the configured threshold
    assert summary["drift_share"] == 0.0 < summary["threshold"]  # no column drifted
    assert summary["drifted_columns"] == [] and set(summary["columns"]) == set(FEATURE_COLUMNS)
    assert {c["stattest"] for c in summary["columns"].values()} == {"wasserstein"}
    assert summary["reference"] == {
        "start": "2019-09-01",
        "end": "2019-09-07",
        "rows": 2100,
        "sampled_rows": 2100,
        "model_name": world["name"],
        "model_version": world["version"],
        "run_id": world["run_id"],
    }
    assert summary["current"] == {"rows": 2100, "sampled_rows": 2100}
    assert summary["scores"]["compared"] is True and summary["scores"]["drifted"] is False
    assert summary["last_drift_retraining"]["as_of"] == "2019-08-15"  # data time
    assert summary["report"] == f"{output}.html"
    assert summary["table"] == f"spark_catalog.{schema_name}.drift_metrics"
    _assert_self_contained(output.with_suffix(".html").read_text())

    first = _metrics(spark, schema_name, SAME)
    assert len(first) == len(FEATURE_COLUMNS) + 2  # every feature, the score, the dataset row
    dataset = next(r for r in first if r["column_name"] == "__dataset__")
    assert dataset["score"] == pytest.approx(summary["drift_share"])
    assert (dataset["status"], dataset["drifted"], dataset["model_version"]) == (
        "no_drift",
        False,
        world["version"],
    )
    small = _metrics(spark, schema_name, SMALL)

    assert drift_main(_argv(world, SAME, output, schema_name)) == 0
    assert _metrics(spark, schema_name, SAME) == first  # replaced, not appended, and identical
    assert _metrics(spark, schema_name, SMALL) == small  # another period is left alone


def test_a_strong_shift_is_drift_naming_the_shifted_columns(spark, world, schema_name, tmp_path):
    config = _config(world, SHIFTED, tmp_path / "drift", schema_name, max_rows=1500)
    summary = detect_drift(spark, config)
    assert summary["status"] == "drift"
    assert summary["drifted_columns"] == SHIFTED_COLUMNS
    assert summary["drift_share"] == pytest.approx(len(SHIFTED_COLUMNS) / len(FEATURE_COLUMNS))
    assert summary["threshold"] == Environment.drift_share  # DriftConfig's default: the same
    assert summary["drift_share"] >= summary["threshold"]
    assert summary["current"] == {"rows": 2100, "sampled_rows": 1500}  # bounded sample
    for column in FEATURE_COLUMNS:
        result = summary["columns"][column]
        assert result["drifted"] is (column in SHIFTED_COLUMNS), column
        assert result["drifted"] is (result["score"] >= result["threshold"]), column
    assert summary["scores"]["compared"] is True and summary["scores"]["drifted"] is True
    rows = {r["column_name"]: r for r in _metrics(spark, schema_name, SHIFTED)}
    assert rows["views_1d"]["drifted"] is True and rows["views_30d"]["drifted"] is False
    assert rows["score"]["kind"] == "prediction" and rows["score"]["drifted"] is True
    assert (rows["__dataset__"]["status"], rows["__dataset__"]["drifted"]) == ("drift", True)
    assert rows["views_1d"]["current_sampled"] == 1500 and rows["views_1d"]["current_rows"] == 2100


def test_too_few_rows_is_insufficient_data_and_never_drift(spark, world, schema_name, tmp_path):
    # 100 current rows against the default --min-rows 1000: nothing is compared.
    summary = detect_drift(spark, _config(world, SMALL, tmp_path / "small", schema_name))
    assert summary["status"] == "insufficient_data" and summary["sufficient"] is False
    assert summary["drift_share"] is None and summary["drifted_columns"] == []
    assert summary["current"]["rows"] == 100 and summary["reference"]["rows"] == 2100
    assert summary["reason"] == (
        "fewer than 1000 mature feature rows on a side (reference 2100, current 100): "
        "nothing compared"
    )
    assert summary["scores"]["compared"] is False
    page = (tmp_path / "small.html").read_text()
    assert "insufficient data" in page and "at least 1000" in page
    assert json.loads((tmp_path / "small.json").read_text()) == summary
    [row] = _metrics(spark, schema_name, SMALL)
    assert (row["column_name"], row["status"], row["drifted"], row["score"]) == (
        "__dataset__",
        "insufficient_data",
        None,
        None,
    )


def test_without_a_champion_the_job_fails_naming_the_model(spark, world, schema_name, tmp_path):
    missing = f"propensity_{uuid.uuid4().hex[:8]}"
    argv = _argv(world, SAME, tmp_path / "x", schema_name)
    argv[argv.index("--model-name") + 1] = missing
    message = f"detect_drift failed: no champion for {missing}: run model_training first"
    with pytest.raises(SystemExit, match=message):
        drift_main(argv)
    assert not (tmp_path / "x.json").exists()
    # A registered model without the alias fails the same way.
    client = MlflowClient()
    client.create_registered_model(missing)
    config = replace(_config(world, SAME, tmp_path / "x", schema_name), model_name=missing)
    with pytest.raises(JobError, match=f"no champion for {missing}: run model_training first"):
        detect_drift(spark, config)


def test_scores_are_compared_only_with_the_champions_own_scores(spark, world, tmp_path):
    config = _config(world, SAME, tmp_path / "x", "unused")
    reference = champion_reference(MlflowClient(), world["name"])
    assert (reference.start, reference.end, reference.run_id) == (
        "2019-09-01",
        "2019-09-07",
        world["run_id"],
    )
    ref, cur, note = score_rows(spark, config, reference)
    assert ref.count() == cur.count() == 2100 and f"version(s) {world['version']}" in note
    other = replace(reference, version="99")  # a champion that never scored its window
    assert score_rows(spark, config, other)[:2] == (None, None)
    assert "no scores by champion v99 on its training window" in score_rows(spark, config, other)[2]
    missing = replace(config, gold_schema=f"t_{uuid.uuid4().hex[:8]}")
    assert "does not exist: score comparison skipped" in score_rows(spark, missing, reference)[2]


def test_bad_arguments_are_refused():
    base = dict(catalog="c", model_name="m", experiment="e", output="o")
    with pytest.raises(ValueError, match="--end-ds 2019-10-01 is before --start-ds 2019-10-05"):
        DriftConfig(start="2019-10-05", end="2019-10-01", **base)
    with pytest.raises(ValueError, match="date"):
        DriftConfig(start="2019-10-01' OR '1'='1", end="2019-10-02", **base)
    with pytest.raises(ValueError, match="below --min-rows"):
        DriftConfig(start="2019-10-01", end="2019-10-02", min_rows=100, max_rows=10, **base)
    with pytest.raises(ValueError, match="--drift-share"):
        DriftConfig(start="2019-10-01", end="2019-10-02", drift_share=0.0, **base)


def test_the_driver_sample_is_bounded_and_the_same_on_every_run(spark):
    df = spark.range(5000).select(
        F.col("id").alias("user_id"),
        F.lit(date(2019, 10, 1)).alias("feature_date"),
        (F.col("id") % 7).cast("double").alias("views_1d"),
    )
    sample = bounded_sample(df, 400, seed=0)
    assert len(sample) == 400 and sample["user_id"].is_unique
    assert sample.equals(bounded_sample(df.repartition(3), 400, seed=0))
    assert not sample["user_id"].equals(bounded_sample(df, 400, seed=1)["user_id"])
    assert 1500 < sample["user_id"].mean() < 3500  # spread over the ids, not the first 400
