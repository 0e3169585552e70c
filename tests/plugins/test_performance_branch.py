"""PerformanceBranchSensor: the second reason to retrain, ``reason=performance``.

The branches in real DAG runs (summaries on the local workspace, ``dag.test()``, the in-flight
check through the Task SDK's execution API); the reasons to skip that are decided before the
in-flight check are also asked of ``decide`` directly, on the same summaries.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pendulum
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from ecom_plugins import PerformanceBranchSensor
from tests.support.airflow import serialize, task_dag_run, xcom

pytestmark = pytest.mark.airflow

LOGICAL_DATE = pendulum.datetime(2019, 11, 8, tz="UTC")
COOLDOWN = timedelta(days=14)

# Measured on the generator (docs/performance_monitoring.md): a model trained before a behaviour
# change, scored on the drifted rows, and the model retrained on them.
STALE = {"roc_auc": 0.821, "ece": 0.164}
RETRAINED = {"roc_auc": 0.833, "ece": 0.017}
VALIDATION_AUC = 0.836


def _summary(
    metrics: dict | None = None,
    status: str | None = None,
    *,
    version: str = "3",
    champion: str = "3",
    last: dict | None = None,
    labelled_rows: int = 2500,
    training_auc: float | None = VALIDATION_AUC,
) -> dict:
    metrics = {**(metrics or STALE), "labelled_rows": labelled_rows, "rows": labelled_rows}
    if status is None:
        status = "decayed" if metrics["ece"] > 0.08 else "healthy"
    return {
        "logical_date": "2019-11-08",
        "score_dates": {"start": "2019-11-01", "end": "2019-11-01"},
        "decision_date": "2019-11-01",
        "horizon_days": 7,
        "status": status,
        "decay_reasons": [],
        "model_name": "ecom_propensity",
        "model_version": version,
        "champion_version": champion,
        "metrics": metrics,
        "training": {"roc_auc": training_auc, "ece": 0.02, "run_id": "abc"},
        "thresholds": {"max_ece": 0.08, "max_auc_drop": 0.05, "min_rows": 1000},
        "unlabelled_rows": 0,
        "dates_without_scores": [],
        "rows": [],
        "last_performance_retraining": last,
        "report": "/Volumes/ecom/raw/reports/model_performance/2019-11-08/model_performance.html",
        "table": "spark_catalog.monitoring.model_performance",
    }


class _Scenario:
    """A DAG sensor -> trigger_retraining | skip_retraining with its own summary path."""

    def __init__(self, put_volume_file, **sensor_kwargs):
        self.suffix = uuid.uuid4().hex[:8]
        self.put = put_volume_file
        root = f"/Volumes/ecom/raw/reports/test_{self.suffix}"
        self.path = f"{root}/2019-11-08/model_performance.json"
        sensor_kwargs.setdefault("training_dag_id", f"model_training_{self.suffix}")
        with DAG(
            dag_id=f"performance_{self.suffix}",
            schedule=None,
            start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
            default_args={"retries": 0},
        ) as self.dag:
            sensor = PerformanceBranchSensor(
                task_id="check_performance",
                summary_path=f"{root}/{{{{ ds }}}}/model_performance.json",
                cooldown=COOLDOWN,
                poke_interval=1,
                **sensor_kwargs,
            )
            sensor >> [
                EmptyOperator(task_id="trigger_retraining"),
                EmptyOperator(task_id="skip_retraining"),
            ]
        serialize(self.dag)

    def run(self, summary: dict) -> dict:
        self.put(self.path, json.dumps(summary))
        run = self.dag.test(logical_date=LOGICAL_DATE)
        assert run.state == "success"
        self.states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        return xcom(self.dag.dag_id, run.run_id, "check_performance", "performance_decision")


TRIGGERED = {
    "check_performance": "success",
    "trigger_retraining": "success",
    "skip_retraining": "skipped",
}
SKIPPED = {
    "check_performance": "success",
    "trigger_retraining": "skipped",
    "skip_retraining": "success",
}


def test_broken_calibration_with_a_flat_auc_triggers_retraining(
    airflow_db, databricks_conn, put_volume_file, capfd
):
    """Behaviour drift that keeps the ranking (AUC 0.821 vs 0.836) and breaks calibration."""
    scenario = _Scenario(put_volume_file)
    decision = scenario.run(_summary(STALE))
    assert scenario.states == TRIGGERED
    assert (decision["decision"], decision["reason"]) == ("trigger_retraining", "performance")
    assert decision["detail"] == "ECE 0.1640 > 0.08, retraining due"
    assert (decision["ece"], decision["roc_auc"], decision["model_version"]) == (0.164, 0.821, "3")
    log = "".join(capfd.readouterr())
    assert "Performance decision: trigger_retraining, reason performance: ECE 0.1640" in log


def test_a_ranking_loss_triggers_and_a_retraining_outside_the_cooldown_does_not_block(
    airflow_db, databricks_conn, put_volume_file
):
    scenario = _Scenario(put_volume_file)
    last = {"as_of": "2019-10-25", "run_id": "old"}  # 14 days before: the cooldown has passed
    decision = scenario.run(_summary({"roc_auc": 0.74, "ece": 0.03}, "decayed", last=last))
    assert scenario.states == TRIGGERED
    assert decision["reason"] == "performance"
    assert decision["detail"].startswith("ROC AUC 0.7400 < validation ROC AUC 0.8360 - 0.05")


@pytest.mark.parametrize(
    ("summary", "reason", "detail"),
    [
        (_summary(RETRAINED), "healthy", "ECE 0.017 <= 0.08"),
        (_summary({"roc_auc": 0.79, "ece": 0.08}), "healthy", "within 0.05 of validation"),
        (
            _summary({"roc_auc": None, "ece": None}, "insufficient_data", labelled_rows=0),
            "insufficient_data",
            "0 labelled rows (at least 1000",
        ),
        (_summary(version="3", champion="4"), "superseded", "the champion is now v4"),
        (
            _summary(last={"as_of": "2019-10-26", "run_id": "perf__1"}),
            "cooldown",
            "13 days before 2019-11-08, within the cooldown of 14 days",
        ),
    ],
    ids=["healthy", "at_the_bounds", "insufficient_data", "superseded", "cooldown"],
)
def test_no_retraining_when_not_due(summary, reason, detail):
    sensor = PerformanceBranchSensor(
        task_id="check", summary_path="/Volumes/x/y/z/s.json", cooldown=COOLDOWN
    )
    decision = sensor.decide(summary, context={})  # decided before the in-flight check
    assert (decision["decision"], decision["reason"]) == ("skip_retraining", reason)
    assert detail in decision["detail"]


def test_within_the_cooldown_the_run_skips(airflow_db, databricks_conn, put_volume_file):
    scenario = _Scenario(put_volume_file)
    decision = scenario.run(_summary(last={"as_of": "2019-11-01", "run_id": "perf__1"}))
    assert scenario.states == SKIPPED
    assert (decision["decision"], decision["reason"]) == ("skip_retraining", "cooldown")


def test_a_retraining_in_flight_is_not_triggered_twice(
    airflow_db, databricks_conn, put_volume_file
):
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    training_dag_id = f"model_training_{uuid.uuid4().hex[:8]}"
    with DAG(dag_id=training_dag_id, schedule=None, start_date=LOGICAL_DATE) as training:
        EmptyOperator(task_id="train")
    serialize(training)
    SerializedDagModel.get_dag(training_dag_id).create_dagrun(
        run_id="performance__2019-11-08",
        logical_date=None,
        run_after=pendulum.now("UTC"),
        run_type=DagRunType.MANUAL,
        triggered_by=DagRunTriggeredByType.TEST,
        state=DagRunState.RUNNING,
    )
    scenario = _Scenario(put_volume_file, training_dag_id=training_dag_id)
    decision = scenario.run(_summary())
    assert scenario.states == SKIPPED
    assert (decision["decision"], decision["reason"]) == ("skip_retraining", "in_flight")


def test_defaults_thresholds_override_and_bad_summaries():
    from airflow.sdk.exceptions import AirflowException

    sensor = PerformanceBranchSensor(task_id="p", summary_path="/Volumes/x/y/z/s.json")
    assert sensor.mode == "reschedule" and sensor.cooldown == timedelta(days=14)
    assert sensor.retraining_run_id == "performance__{{ ds }}"
    assert sensor.training_dag_id == "model_training"
    # The operator's bound wins over the summary's: ECE 0.164 is no decay under 0.2.
    strict = PerformanceBranchSensor(task_id="p", summary_path="/Volumes/x/s.json", max_ece=0.2)
    decision = strict.decide(_summary(STALE), context={})
    assert (decision["reason"], decision["max_ece"]) == ("healthy", 0.2)
    with pytest.raises(AirflowException, match="status 'fine' is not one of"):
        sensor.decide({**_summary(), "status": "fine"}, context={})
    with pytest.raises(AirflowException, match="logical_date 'soon' is not a date"):
        sensor.decide({**_summary(), "logical_date": "soon"}, context={})


def test_a_backfill_measures_decay_but_does_not_retrain_unless_its_conf_asks():
    sensor = PerformanceBranchSensor(task_id="check_performance", summary_path="/Volumes/x/s.json")
    backfill = {"dag_run": task_dag_run("backfill", None, "model_performance")}
    decision = sensor.decide(_summary(STALE), backfill)
    assert (decision["decision"], decision["reason"]) == ("skip_retraining", "backfill")
    assert decision["detail"].startswith("ECE 0.1640 > ")
    asked = {"dag_run": task_dag_run("backfill", {"retrain": True}, "model_performance")}
    assert sensor.backfill_hold(asked) is None
