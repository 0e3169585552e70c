"""Propensity training: time split without leakage, pipelines, metrics, the promotion rule,
the registry (challenger, champion, rollback) and batch serving with lineage, on real MLflow
(SQLite tracking store) and real Spark."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from sklearn.metrics import roc_auc_score

from clickstream.core.contracts import FEATURE_COLUMNS
from clickstream.core.maturity import ImmatureWindowError
from clickstream.models import registry
from clickstream.models.promotion import decide
from clickstream.models.propensity import evaluation
from clickstream.models.propensity.candidates import (
    SKOPS_TRUSTED_TYPES,
    candidates,
    feature_importance,
)
from clickstream.models.propensity.data import (
    TrainingDataError,
    Windows,
    bounded_pandas,
    features_frame,
    labelled_rows,
)
from clickstream.models.propensity.serving import score_users
from clickstream.models.propensity.training import TrainingConfig, train_propensity
from clickstream.sources.ground_truth import DayTruth, days_csv
from tests.support.training_data import PROPENSITY_AS_OF as AS_OF
from tests.support.training_data import history_events, propensity_tables, synthetic_features

SPARK_JOBS = Path(__file__).resolve().parents[3] / "spark_jobs"


def _model_name() -> str:
    return f"propensity_{uuid.uuid4().hex[:8]}"


# -- the split ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("horizon", "train", "val"), [(7, 14, 7), (3, 5, 2), (1, 1, 2)])
def test_windows_leave_no_label_overlap_between_train_and_validation(horizon, train, val):
    w = Windows.build(AS_OF, horizon, train, val)
    as_of = date.fromisoformat(AS_OF)
    assert w.validation[1] == as_of - timedelta(days=horizon)  # newest closed label
    assert (w.validation[1] - w.validation[0]).days + 1 == val
    assert (w.train[1] - w.train[0]).days + 1 == train
    # A training label looks at (F, F + horizon]: it must end before validation starts.
    assert w.train[1] + timedelta(days=horizon) < w.validation[0]
    assert w.history_needed == (as_of - w.train[0]).days
    # The validation window splits in time: selection first, evaluation later, no date shared.
    assert (w.selection[0], w.evaluation[1]) == w.validation
    assert w.selection[1] + timedelta(days=1) == w.evaluation[0]
    assert (w.selection[1] - w.selection[0]).days + 1 == val // 2


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="at least 1 day"):
        Windows.build(AS_OF, 7, 0, 7)
    with pytest.raises(ValueError, match="selection and a later evaluation"):
        Windows.build(AS_OF, 7, 14, 1)


def test_labelled_rows_take_closed_labels_of_the_window_and_horizon(spark):
    features = spark.createDataFrame(
        [(1, date(2019, 11, d)) for d in (1, 2, 3)], "user_id bigint, feature_date date"
    )
    labels = spark.createDataFrame(
        [(1, date(2019, 11, 1), 7, 1), (1, date(2019, 11, 2), 7, 0), (1, date(2019, 11, 2), 3, 1)],
        "user_id bigint, feature_date date, horizon_days int, purchased int",
    )
    rows = labelled_rows(features, labels, date(2019, 11, 2), date(2019, 11, 3), 7)
    assert [(r.user_id, str(r.feature_date), r.purchased) for r in rows.collect()] == [
        (1, "2019-11-02", 0)
    ]


def test_the_driver_sample_is_bounded_and_reproducible(spark):
    df = spark.range(5000).select(
        F.col("id").alias("user_id"), F.lit(date(2019, 11, 1)).alias("feature_date")
    )
    sample, fraction, rows = bounded_pandas(df, 400, seed=1)
    assert rows == 5000 and len(sample) <= 400 and 0 < fraction < 0.1
    again, _, _ = bounded_pandas(df, 400, seed=1)
    assert sample.equals(again)
    whole, fraction, _ = bounded_pandas(df.limit(100), 400, seed=1)
    assert (len(whole), fraction) == (100, 1.0)


# -- pipelines and metrics ---------------------------------------------------------------------


def test_both_candidate_pipelines_fit_and_predict_probabilities_with_missing_values():
    x, y, _ = synthetic_features(400, seed=1)
    for name, pipeline in candidates(seed=0).items():
        p = pipeline.fit(x, y).predict_proba(x)[:, 1]
        assert p.shape == (400,) and np.all((p >= 0) & (p <= 1)), name
        assert evaluation.metrics(y, p)["roc_auc"] > 0.6, name
        importance = feature_importance(pipeline, x)
        # One value per model input: every feature plus the missing-value indicator of each
        # nullable column that had nulls; importances are magnitudes, sorted descending.
        assert "missingindicator_days_since_last_view" in importance.index, name
        assert set(x.columns) <= set(importance.index), name
        assert (importance >= 0).all() and importance.is_monotonic_decreasing, name


def test_metrics_on_known_scores():
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    p = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.9, 0.8])
    m = evaluation.metrics(y, p)
    assert m["roc_auc"] == 1.0 and m["pr_auc"] == 1.0
    assert m["lift_top_decile"] == pytest.approx(5.0)  # top 10% = 1 row, a positive; base 0.2
    assert m["brier_score"] == pytest.approx(np.mean((p - y) ** 2))
    assert evaluation.expected_calibration_error(np.array([1, 0]), np.array([0.5, 0.5])) == 0.0
    assert evaluation.lift_capture(0.8, 0.9) == pytest.approx(0.75)


# -- the promotion rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("challenger", "champion", "promote"),
    [(0.80, 0.75, True), (0.74, 0.75, False), (0.75, 0.75, False), (0.751, 0.75, False)],
    ids=["wins", "loses", "ties", "below-margin"],
)
def test_challenger_replaces_the_champion_only_by_the_margin(challenger, champion, promote):
    decision = decide(
        challenger, champion_auc=champion, champion_version="3", baseline_auc=0.6, margin=0.002
    )
    assert decision.promote is promote
    assert decision.reference == "champion v3"
    assert f"{challenger:.4f}" in decision.reason and "champion v3" in decision.reason


def test_the_first_model_must_beat_the_recency_baseline():
    first = dict(champion_auc=None, champion_version=None, margin=0.0)
    assert decide(0.70, baseline_auc=0.65, **first).promote is True
    loser = decide(0.60, baseline_auc=0.65, **first)
    assert loser.promote is False and loser.reference == "recency baseline"


# -- the registry ------------------------------------------------------------------------------


def _log_model(experiment: str, seed: int) -> tuple[str, str]:
    x, y, _ = synthetic_features(200, seed)
    pipeline = candidates()["logistic_regression"].fit(x, y)
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            pipeline, name="model", skops_trusted_types=SKOPS_TRUSTED_TYPES
        )
    return info.model_uri, run.info.run_id


def test_registry_promotes_keeps_and_rolls_back(tracking):
    client, name = MlflowClient(), _model_name()
    with pytest.raises(registry.RegistryError, match="run the model_training DAG first"):
        registry.champion(client, name)
    versions = []
    for seed, promote in ((1, True), (2, False), (3, True)):
        uri, run_id = _log_model(tracking, seed)
        version = registry.register_challenger(client, name, uri, run_id, {"seed": str(seed)})
        registry.record_decision(client, name, version, promote=promote, reason=f"seed {seed}")
        versions.append(version)
        assert registry.alias_version(client, name, registry.CHALLENGER) == version
    v1, v2, v3 = versions
    assert registry.champion(client, name).version == v3
    assert client.get_model_version(name, v2).tags["decision"] == "kept"
    assert client.get_model_version(name, v3).tags["previous_champion"] == v1
    assert registry.rollback(client, name) == (v3, v1)
    assert registry.champion(client, name).uri == f"models:/{name}/{v1}"
    assert client.get_model_version(name, v3).tags["rolled_back"] == "true"
    with pytest.raises(registry.RegistryError, match="nothing to roll back to"):
        registry.rollback(client, name)
    assert registry.rollback(client, name, to_version=v2) == (v1, v2)
    with pytest.raises(registry.RegistryError, match="has no version 99"):
        registry.rollback(client, name, to_version="99")


def test_the_rollback_command_is_safe_to_repeat_and_refuses_bad_input(tracking):
    client, name = MlflowClient(), _model_name()
    versions = []
    for seed in (1, 2):
        uri, run_id = _log_model(tracking, seed)
        version = registry.register_challenger(client, name, uri, run_id, {})
        registry.record_decision(client, name, version, promote=True, reason=f"seed {seed}")
        versions.append(version)
    v1, v2 = versions
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
        "PYTHONPATH": str(SPARK_JOBS),
    }

    def command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(SPARK_JOBS / "rollback_champion.py"), "--model-name", name, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    for _ in range(2):  # the second run is a retry: nothing more moves
        done = command("--from-version", v2)
        assert done.returncode == 0, done.stderr
        assert f"champion is v{v1} (rolled back from v{v2})" in done.stdout
    assert registry.champion(client, name).version == v1
    for args, message in (
        (("--to-version", "99"), "has no version 99"),
        (("--from-version", "99"), f"is v{v1}, not v99: it moved"),
    ):
        refused = command(*args)
        assert refused.returncode != 0
        assert "rollback_champion failed:" in refused.stderr and message in refused.stderr
        assert "Traceback" not in refused.stderr
        assert registry.champion(client, name).version == v1


# -- a whole training and serving, on Spark tables ---------------------------------------------


def _ground_truth(spark, schema: str, start: str, end: str, path: Path) -> pd.DataFrame:
    """A per-user "true propensity" (the user's share of positive labels in [start, end]) with
    equal activity shares, and a days.csv of equal days beside it, written where the job reads
    them; returns the window's labels for an independent oracle. With equal shares and days,
    the true probability ranks as the propensity does."""
    labels = (
        spark.table(f"{schema}.user_labels")
        .where(F.col("feature_date").between(start, end))
        .select("user_id", "purchased")
        .toPandas()
    )
    truth = labels.groupby("user_id")["purchased"].mean().rename("purchase_propensity")
    users = truth.reset_index().assign(activity_share=1.0 / len(truth))
    users.to_csv(path, index=False)
    first = date.fromisoformat(start)
    days = [DayTruth(first + timedelta(days=k), 1000, 1.0, 1.0) for k in range(40)]
    (path.parent / "days.csv").write_bytes(days_csv(days))
    return labels.merge(truth.reset_index(), on="user_id")


def test_training_tracks_registers_promotes_and_serving_scores_with_lineage(
    spark, tracking, schema_name, tmp_path
):
    propensity_tables(spark, schema_name, AS_OF)
    windows = Windows.build(AS_OF, 7, 10, 5)
    validation = _ground_truth(
        spark, schema_name, *map(str, windows.evaluation), tmp_path / "users.csv"
    )
    name = _model_name()
    config = TrainingConfig(
        model_name=name,
        experiment=tracking,
        windows=windows,
        max_rows=1500,
        airflow_run_id="manual__test",
        git_commit="abc123",
        ground_truth=str(tmp_path / "users.csv"),
        reason="drift",
        drift_summary="/Volumes/ecom/monitoring/reports/drift_detection/2019-11-01/x.json",
        logical_date="2019-12-05",  # a triggered run training as of an earlier date
    )
    result = train_propensity(spark, config, "spark_catalog", schema_name)
    assert result["decision"].promote is True
    assert result["decision"].reference == "recency baseline"
    client = MlflowClient()
    _assert_parent_run(client, result, config, validation, schema_name)
    _assert_candidate_runs(client, result["parent_run_id"])
    _assert_registered_model(client, name, result["version"])
    _assert_serving(spark, client, schema_name, name, result["version"])


def _assert_parent_run(client, result, config, validation, schema_name: str) -> None:
    """The parent run's lineage tags, decision and the oracle's figures."""
    parent = client.get_run(result["parent_run_id"])
    assert parent.data.tags["train_window_start"] == "2019-11-02"
    assert parent.data.tags["validation_window_end"] == "2019-11-23"
    assert parent.data.tags[f"delta_version.spark_catalog.{schema_name}.user_features"] == "0"
    assert parent.data.tags["airflow_run_id"] == "manual__test"
    assert {
        k: parent.data.tags[k]
        for k in ("git_commit", "logical_date", "as_of", "reason", "drift_summary")
    } == {
        "git_commit": "abc123",
        "logical_date": "2019-12-05",
        "as_of": AS_OF,
        "reason": "drift",
        "drift_summary": config.drift_summary,
    }
    assert parent.data.tags["selection_window_end"] < parent.data.tags["evaluation_window_start"]
    # The oracle: the true probability's AUC on the same evaluation rows (all of them: 3 days x
    # 300 users; the window's 1,500 rows = max_rows), and the share of its lift the serving
    # model captures.
    metrics = parent.data.metrics
    oracle = roc_auc_score(validation["purchased"], validation["purchase_propensity"])
    assert metrics["oracle_roc_auc"] == pytest.approx(oracle)
    assert metrics["champion_after_roc_auc"] == metrics["challenger_roc_auc"]  # promoted
    assert metrics["lift_capture"] == pytest.approx(
        (metrics["challenger_roc_auc"] - 0.5) / (oracle - 0.5)
    )
    assert parent.data.tags["decision"] == "promoted"
    # Per-user bootstrap intervals around each headline figure, and the paired difference
    # (challenger - baseline, for a first model) whose low end cleared the margin.
    for name in ("challenger", "baseline", "oracle", "delta"):
        low, high = metrics[f"{name}_roc_auc_ci_low"], metrics[f"{name}_roc_auc_ci_high"]
        assert low <= metrics[f"{name}_roc_auc"] <= high and high - low < 0.2
    assert metrics["delta_roc_auc_ci_low"] > config.margin
    low, high = metrics["lift_capture_ci_low"], metrics["lift_capture_ci_high"]
    assert low <= metrics["lift_capture"] <= high
    assert "interval" in parent.data.tags["decision_reason"]
    assert parent.data.params["train_rows"] == str(300 * 10)


def _assert_candidate_runs(client, parent_run_id: str) -> None:
    """One nested run per candidate, with its validation metrics and plots."""
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    names = sorted(c.info.run_name for c in children)
    best = parent.data.tags["best_candidate"]
    assert names == sorted(["logistic_regression", "random_forest", f"refit {best}"])
    # The registered model is the winner refitted on every labelled date up to the cut-off.
    (refit,) = [c for c in children if c.info.run_name.startswith("refit")]
    assert (refit.data.tags["fit_window_start"], refit.data.tags["fit_window_end"]) == (
        parent.data.tags["train_window_start"],
        parent.data.tags["validation_window_end"],
    )
    assert int(refit.data.params["refit_rows"]) > int(parent.data.params["train_rows"])
    version = parent.data.tags["challenger_version"]
    assert client.get_model_version(parent.data.tags["model_name"], version).run_id == (
        refit.info.run_id
    )
    for child in children:
        assert {
            "roc_auc",
            "pr_auc",
            "log_loss",
            "brier_score",
            "calibration_error",
            "lift_top_decile",
        } <= set(child.data.metrics)
        if child is refit:
            continue
        plots = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
        assert plots == {
            f"plots/{p}.png"
            for p in ("roc", "precision_recall", "calibration", "feature_importance")
        }


def _assert_registered_model(client, name: str, version: str) -> None:
    """The registered model carries its signature (every feature in, one probability out) and
    an input example that the loaded model scores; it is the champion."""
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    assert [c.name for c in info.signature.inputs.inputs] == list(FEATURE_COLUMNS)
    assert len(info.signature.outputs.inputs) == 1
    example = mlflow.models.Model.load(info.model_uri).load_input_example()
    assert list(example.columns) == list(FEATURE_COLUMNS) and len(example) == 5
    assert registry.champion(client, name).version == version


def _assert_serving(spark, client, schema_name: str, name: str, version: str) -> None:
    """Serving: every active user scored by the champion, lineage on every row, rerun = same."""
    args = dict(ds=AS_OF, catalog="spark_catalog", model_name=name, gold_schema=schema_name)
    score_users(spark, airflow_run_id="scheduled__x", **args)
    scores = spark.table(f"{schema_name}.propensity_scores")
    assert scores.count() == 300
    lineage = (
        scores.select(
            "model_name",
            "model_version",
            "model_alias",
            "feature_date",
            "logical_date",
            "airflow_run_id",
            "score_date",
        )
        .distinct()
        .collect()
    )
    assert [tuple(map(str, r)) for r in lineage] == [
        (name, version, "champion", AS_OF, AS_OF, "scheduled__x", AS_OF)
    ]
    first = scores.collect()
    assert all(0.0 <= r["score"] <= 1.0 for r in first)
    # The same scores as the model gives on the driver: distributed scoring changes nothing.
    model = mlflow.sklearn.load_model(registry.champion(client, name).uri)
    online = spark.table(f"{schema_name}.user_features_online").toPandas()
    expected = model.predict_proba(features_frame(online))[:, 1]
    by_user = {r["user_id"]: r["score"] for r in first}
    assert np.allclose([by_user[u] for u in online["user_id"]], expected)
    score_users(spark, airflow_run_id="scheduled__x", **args)
    assertDataFrameEqual(spark.table(f"{schema_name}.propensity_scores"), first)


def test_training_refuses_an_immature_window_before_reading_or_fitting(
    spark, tracking, schema_name
):
    """The data begins 40 days before the as-of date: the training window (34..21 days back)
    has feature dates whose 30-day window starts before the data. No run is started."""
    windows = Windows.build(AS_OF, 7, 14, 7)
    config = TrainingConfig(model_name=_model_name(), experiment=tracking, windows=windows)
    spark.sql(f"CREATE SCHEMA {schema_name}")
    with pytest.raises(ImmatureWindowError, match=r"no data: silver\.events is empty"):
        train_propensity(spark, config, "spark_catalog", schema_name)
    history_events(spark, schema_name, date.fromisoformat(AS_OF) - timedelta(days=40))
    with pytest.raises(ImmatureWindowError, match=r"training window 2019-10-27\.\.") as refused:
        train_propensity(spark, config, "spark_catalog", schema_name)
    assert "first mature feature date" in str(refused.value)
    experiment = mlflow.get_experiment_by_name(tracking)
    if experiment is not None:  # no run of this model was started
        started = mlflow.search_runs(
            [experiment.experiment_id], filter_string=f"tags.model_name = '{config.model_name}'"
        )
        assert started.empty
    # The same windows on data that begins 63 days back are mature (the training then fails
    # for the next reason: this schema has no feature table).
    history_events(spark, schema_name, date.fromisoformat(AS_OF) - timedelta(days=63))
    with pytest.raises(TrainingDataError, match="user_features does not exist"):
        train_propensity(spark, config, "spark_catalog", schema_name)


def test_serving_without_a_champion_fails_telling_what_to_run(spark, tracking):
    with pytest.raises(registry.RegistryError, match="run the model_training DAG first"):
        score_users(
            spark, ds=AS_OF, catalog="spark_catalog", model_name=_model_name(), airflow_run_id="x"
        )
