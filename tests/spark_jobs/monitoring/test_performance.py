"""The performance-monitoring job on real Spark, Delta and MLflow: a registered champion whose
candidate run logged validation metrics, scores and labels written straight into Delta tables
with their contracts. Each score date is built to be one case: calibrated scores (healthy),
the same ranking with broken calibration (decayed on ECE, AUC flat), scores that no longer
rank (decayed on AUC), scores of users without a label (counted and reported) and a date
whose labels never closed (insufficient data)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from monitor_performance import main as performance_main
from sklearn.dummy import DummyClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from clickstream.core.contracts import PROPENSITY_SCORES, USER_LABELS
from clickstream.models import registry
from clickstream.models.propensity.candidates import SKOPS_TRUSTED_TYPES
from clickstream.models.propensity.evaluation import (
    expected_calibration_error,
    lift_at_top_decile,
)
from clickstream.monitoring import performance
from clickstream.monitoring.performance import (
    MODEL_PERFORMANCE,
    PerformanceConfig,
)
from ecom_airflow.config import LOCAL
from ecom_plugins.performance_branch import decay_reasons as airflow_decay_reasons

pytestmark = pytest.mark.spark

USERS = 2500  # scored users per date, above --min-rows (LOCAL.performance_min_rows, 2000)
HORIZON = 7
HEALTHY, ECE_DECAY, AUC_DECAY, MISSING, OPEN = (date(2019, 10, d).isoformat() for d in range(1, 6))
LOGICAL = "2019-10-12"  # labels of every score date up to 2019-10-05 have closed
MISSING_LABELS = 100  # users of MISSING scored but without a label row


def _case(seed: int, day: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of one score date: labels drawn from a true probability; the scores
    are that probability (healthy), a monotone but miscalibrated map of it (same ROC AUC,
    ECE far off) or noise around the base rate (calibrated on average, no ranking)."""
    rng = np.random.default_rng(seed)
    truth = 1.0 / (1.0 + np.exp(-rng.normal(-1.4, 1.3, USERS)))
    y = (rng.random(USERS) < truth).astype(int)
    if day == ECE_DECAY:
        return y, 0.45 + 0.5 * truth  # ranking kept, every score too high
    if day == AUC_DECAY:
        return y, np.clip(truth.mean() + rng.normal(0.0, 0.02, USERS), 0.0, 1.0)
    return y, truth


def _register_champion(experiment: str, name: str, validation: dict[str, float]) -> str:
    """A tiny model registered as ``train_models`` does, its candidate run carrying the
    validation metrics the training logs."""
    tags = {"train_window_start": "2019-09-01", "train_window_end": "2019-09-07"}
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name="propensity 2019-09-20", tags=tags):
        with mlflow.start_run(run_name="dummy", nested=True, tags=tags) as child:
            mlflow.log_metrics(validation)
            model = DummyClassifier(strategy="prior").fit([[0.0], [1.0]], [0, 1])
            info = mlflow.sklearn.log_model(
                model, name="model", skops_trusted_types=SKOPS_TRUSTED_TYPES
            )
    client = MlflowClient()
    version = registry.register_challenger(client, name, info.model_uri, child.info.run_id, tags)
    registry.record_decision(client, name, version, promote=True, reason="test")
    return version


@pytest.fixture(scope="module")
def world(spark, tracking, tmp_path_factory):
    """Scores and labels in a fresh schema, a champion with its validation metrics."""
    schema = f"t_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA {schema}")
    experiment = f"/test/performance-{uuid.uuid4().hex[:6]}"
    mlflow.create_experiment(experiment, artifact_location=str(tmp_path_factory.mktemp("art")))
    name = f"propensity_{uuid.uuid4().hex[:8]}"
    cases = {day: _case(i, day) for i, day in enumerate((HEALTHY, ECE_DECAY, AUC_DECAY, MISSING))}
    cases[OPEN] = _case(9, OPEN)
    # What the version showed at training time: a little better than the healthy date.
    healthy_auc = roc_auc_score(*cases[HEALTHY])
    validation = {"roc_auc": healthy_auc + 0.01, "calibration_error": 0.02}
    version = _register_champion(experiment, name, validation)

    scores, labels = [], []
    for day, (y, p) in cases.items():
        scored = date.fromisoformat(day)
        closed = scored + timedelta(days=HORIZON)
        for user in range(USERS):
            lineage = (name, version, "champion", scored, scored, "scheduled__x", scored)
            scores.append((user + 1, float(p[user]), *lineage))
            labelled = day != OPEN and not (day == MISSING and user < MISSING_LABELS)
            if labelled:
                outcome = int(y[user])
                labels.append((user + 1, scored, HORIZON, outcome, outcome, closed))
                # Another horizon's label of the same row, with the opposite outcome: ignored.
                labels.append((user + 1, scored, 14, 1 - outcome, 1 - outcome, closed))
    # Another model's scores of the same date: not this model's performance.
    healthy = date.fromisoformat(HEALTHY)
    scores += [
        (u, 0.99, "other_model", "1", "champion", healthy, healthy, "scheduled__x", healthy)
        for u in range(1, 200)
    ]
    for rows, contract, table in (
        (scores, PROPENSITY_SCORES, "propensity_scores"),
        (labels, USER_LABELS, "user_labels"),
    ):
        ddl = ", ".join(f"{c.name} {c.type}" for c in contract.columns)
        spark.createDataFrame(rows, ddl).write.format("delta").saveAsTable(f"{schema}.{table}")
    return {
        "schema": schema,
        "experiment": experiment,
        "name": name,
        "version": version,
        "cases": cases,
        "validation": validation,
    }


def _argv(world, output, monitoring: str, *extra: str) -> list[str]:
    # Thresholds as the DAG passes them: the environment's.
    return [
        "--ds",
        LOGICAL,
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
        "--horizon-days",
        str(HORIZON),
        "--max-ece",
        str(LOCAL.performance_max_ece),
        "--max-auc-drop",
        str(LOCAL.performance_max_auc_drop),
        "--min-rows",
        str(LOCAL.performance_min_rows),
        "--airflow-run-id",
        "scheduled__performance",
        *extra,
    ]


def _rows(spark, monitoring: str) -> dict[str, dict]:
    table = spark.table(MODEL_PERFORMANCE.name("spark_catalog", monitoring))
    return {r["score_date"].isoformat(): r.asDict() for r in table.collect()}


@pytest.fixture(scope="module")
def measured(spark, world, tmp_path_factory):
    """One backfill run over every score date of the world."""
    monitoring = f"t_{uuid.uuid4().hex[:8]}"
    output = tmp_path_factory.mktemp("reports") / LOGICAL / "model_performance"
    argv = _argv(world, output, monitoring, "--start-ds", HEALTHY, "--end-ds", OPEN)
    assert performance_main(argv) == 0
    summary = json.loads(output.with_suffix(".json").read_text())
    return {"monitoring": monitoring, "output": output, "argv": argv, "summary": summary}


def test_the_metrics_are_scikit_learns_on_the_joined_rows(spark, world, measured):
    rows = _rows(spark, measured["monitoring"])
    assert set(rows) == {HEALTHY, ECE_DECAY, AUC_DECAY, MISSING, OPEN}  # one version each
    for day in (HEALTHY, ECE_DECAY, AUC_DECAY, MISSING):
        y, p = world["cases"][day]
        if day == MISSING:  # only the labelled rows are measured
            y, p = y[MISSING_LABELS:], p[MISSING_LABELS:]
        row = rows[day]
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12), day
        assert row["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12), day
        assert row["ece"] == pytest.approx(expected_calibration_error(y, p), abs=1e-12), day
        assert row["lift_top_decile"] == pytest.approx(lift_at_top_decile(y, p), abs=1e-12)
        assert row["base_rate"] == pytest.approx(y.mean()) and row["positives"] == y.sum()
        assert row["mean_score"] == pytest.approx(p.mean())
        assert (row["model_name"], row["model_version"]) == (world["name"], world["version"])
        assert row["training_roc_auc"] == pytest.approx(world["validation"]["roc_auc"])
        assert row["training_ece"] == pytest.approx(world["validation"]["calibration_error"])
        assert row["horizon_days"] == HORIZON and row["logical_date"] == date(2019, 10, 12)
        assert row["airflow_run_id"] == "scheduled__performance"
    # A monotone map of the scores keeps the ranking: AUC flat, calibration broken.
    assert rows[ECE_DECAY]["roc_auc"] == pytest.approx(rows[HEALTHY]["roc_auc"], abs=0.03)
    assert rows[ECE_DECAY]["ece"] > 5 * rows[HEALTHY]["ece"]


def test_the_decay_rule_fires_on_calibration_or_ranking_and_not_on_healthy_scores(spark, measured):
    rows = _rows(spark, measured["monitoring"])
    assert (rows[HEALTHY]["status"], rows[HEALTHY]["decay_reasons"]) == ("healthy", None)
    assert rows[MISSING]["status"] == "healthy"
    assert rows[ECE_DECAY]["status"] == "decayed"
    assert rows[ECE_DECAY]["decay_reasons"].startswith("ECE ")
    assert "ROC AUC" not in rows[ECE_DECAY]["decay_reasons"]
    assert rows[AUC_DECAY]["status"] == "decayed"
    assert rows[AUC_DECAY]["decay_reasons"].startswith("ROC AUC ")
    assert rows[AUC_DECAY]["ece"] <= LOCAL.performance_max_ece  # calibrated on average
    # The summary's decision reads the last score date (labels never closed: not judged).
    summary = measured["summary"]
    assert (summary["decision_date"], summary["status"]) == (OPEN, "insufficient_data")
    assert summary["thresholds"] == {
        "max_ece": LOCAL.performance_max_ece,
        "max_auc_drop": LOCAL.performance_max_auc_drop,
        "min_rows": LOCAL.performance_min_rows,
    }


def test_scores_without_labels_are_counted_and_reported(spark, world, measured, capsys):
    rows = _rows(spark, measured["monitoring"])
    missing = rows[MISSING]
    assert (missing["rows"], missing["labelled_rows"], missing["unlabelled_rows"]) == (
        USERS,
        USERS - MISSING_LABELS,
        MISSING_LABELS,
    )
    closed = rows[OPEN]  # scored, never labelled: every score reported, nothing measured
    assert (closed["rows"], closed["labelled_rows"], closed["unlabelled_rows"]) == (
        USERS,
        0,
        USERS,
    )
    assert closed["status"] == "insufficient_data" and closed["roc_auc"] is None
    assert rows[HEALTHY]["unlabelled_rows"] == 0 and rows[HEALTHY]["rows"] == USERS
    summary = measured["summary"]
    assert summary["unlabelled_rows"] == MISSING_LABELS + USERS
    by_date = {r["score_date"]: r for r in summary["rows"]}
    assert by_date[MISSING]["unlabelled_rows"] == MISSING_LABELS
    page = measured["output"].with_suffix(".html").read_text()
    assert f"{MISSING_LABELS + USERS} score(s) have no label row" in page


def test_a_rerun_replaces_the_dates_rows_and_leaves_the_others(
    spark, world, measured, tmp_path, capsys
):
    monitoring = measured["monitoring"]
    before = _rows(spark, monitoring)
    # The daily run of 2019-10-08 measures its own score date only: 2019-10-01.
    argv = _argv(world, tmp_path / "daily", monitoring)
    argv[argv.index("--ds") + 1] = "2019-10-08"
    argv[argv.index("--airflow-run-id") + 1] = "scheduled__rerun"
    assert performance_main(argv) == 0  # HEALTHY again: measured by the backfill above
    out = capsys.readouterr().out
    assert f"{HEALTHY} v{world['version']}: HEALTHY ({USERS} of {USERS} scores labelled" in out
    after = _rows(spark, monitoring)
    assert len(spark.table(MODEL_PERFORMANCE.name("spark_catalog", monitoring)).collect()) == 5
    assert after[HEALTHY]["airflow_run_id"] == "scheduled__rerun"
    changed = {"airflow_run_id", "logical_date"}
    assert {k: v for k, v in after[HEALTHY].items() if k not in changed} == {
        k: v for k, v in before[HEALTHY].items() if k not in changed
    }
    for day in (ECE_DECAY, AUC_DECAY, MISSING, OPEN):
        assert after[day] == before[day], day
    summary = json.loads((tmp_path / "daily.json").read_text())
    assert (summary["decision_date"], summary["status"]) == (HEALTHY, "healthy")
    assert summary["model_version"] == summary["champion_version"] == world["version"]
    assert summary["training"]["roc_auc"] == pytest.approx(world["validation"]["roc_auc"])


def test_the_page_is_self_contained_and_names_the_decision(measured):
    page = measured["output"].with_suffix(".html").read_text()
    assert re.search(r"<script", page) is None
    assert re.search(r"<link[^>]*\shref=", page) is None
    assert re.search(r"(src|href)=[\"']?https?:", page) is None
    assert re.search(r"url\(|@import", page) is None
    assert "<svg" in page and "reliability diagram" in page
    assert (
        "insufficient_data" in page
        and "decayed" in page
        and f"ECE &gt; {LOCAL.performance_max_ece}" in page
    )


def test_the_job_and_the_sensor_apply_the_same_rule():
    """The Airflow side re-applies the rule to the summary's figures: the same answers."""
    thresholds = {"max_ece": 0.08, "max_auc_drop": 0.05}
    # The measured case of a behaviour change: trained before it, scored on drifted rows
    # (ROC AUC 0.821, ECE 0.164) against retrained on them (0.833, 0.017).
    cases = [
        ({"roc_auc": 0.821, "ece": 0.164}, {"roc_auc": 0.836}, True),
        ({"roc_auc": 0.833, "ece": 0.017}, {"roc_auc": 0.836}, False),
        ({"roc_auc": 0.70, "ece": 0.02}, {"roc_auc": 0.83}, True),
        ({"roc_auc": 0.79, "ece": 0.08}, {"roc_auc": 0.83}, False),  # both at their bound
        ({"roc_auc": 0.70, "ece": 0.02}, {"roc_auc": None}, False),  # no validation figure
    ]
    for figures, training, decayed in cases:
        job = performance.decay_reasons(figures, training, **thresholds)
        assert job == airflow_decay_reasons(figures, training, **thresholds)
        assert bool(job) is decayed, (figures, training)


def test_bad_arguments_are_refused(capsys):
    base = dict(catalog="c", model_name="m", experiment="e", output="o")
    with pytest.raises(ValueError, match="close on 2019-10-08, after the logical date"):
        PerformanceConfig(logical_date="2019-10-07", start="2019-10-01", end="2019-10-01", **base)
    PerformanceConfig(logical_date="2019-10-08", start="2019-10-01", end="2019-10-01", **base)
    with pytest.raises(ValueError, match="--end-ds 2019-10-01 is before --start-ds 2019-10-05"):
        PerformanceConfig(logical_date="2019-11-01", start="2019-10-05", end="2019-10-01", **base)
    with pytest.raises(ValueError, match="--max-ece"):
        PerformanceConfig(
            logical_date="2019-11-01", start="2019-10-01", end="2019-10-01", max_ece=0, **base
        )
    argv = ["--ds", LOGICAL, "--catalog", "c", "--model-name", "m", "--experiment", "e"]
    with pytest.raises(SystemExit, match="--start-ds and --end-ds go together"):
        performance_main([*argv, "--output", "o", "--start-ds", HEALTHY])
