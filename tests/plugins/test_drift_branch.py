"""DriftBranchSensor in real DAG runs: summaries on the local workspace, branches by dag.test().

The in-flight check goes through the Task SDK (``ti.get_dr_count`` -> execution API -> the
metadata database), against a real DAG run of a training DAG created in the database.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import pendulum
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from ecom_plugins import DriftBranchSensor
from tests.support.airflow import serialize, task_dag_run, xcom

pytestmark = pytest.mark.airflow

LOGICAL_DATE = pendulum.datetime(2019, 11, 30, tz="UTC")
RETRAINING_RUN_ID = "drift__2019-11-30"


def _summary(
    status: str = "drift",
    drift_share: float | None = 0.45,
    threshold: float = 0.3,
    sufficient: bool = True,
    last_drift_retraining: dict | None = None,
) -> dict:
    return {
        "period_start": "2019-11-01",
        "period_end": "2019-11-30",
        "status": status,
        "drift_share": drift_share,
        "threshold": threshold,
        "sufficient": sufficient,
        "min_rows": 1000,
        "drifted_columns": ["views_7d", "carts_7d"] if status == "drift" else [],
        "columns": ["views_7d", "carts_7d", "purchases_30d", "price_mean_30d"],
        "reference": {
            "start": "2019-10-01",
            "end": "2019-10-31",
            "rows": 50_000,
            "model_name": "ecom_propensity",
            "model_version": "3",
            "run_id": "abc123",
        },
        "current": {"rows": 40_000 if sufficient else 120},
        "scores": {"views_7d": 0.02, "carts_7d": 0.01},
        "last_drift_retraining": last_drift_retraining,
        "report": "/Volumes/ecom/raw/reports/drift_detection/2019-11-30/drift.html",
        "table": "gold.user_features_online",
    }


class _Scenario:
    """A drift DAG (sensor -> trigger_retraining | skip_retraining) with its own summary path."""

    def __init__(self, put_volume_file, **sensor_kwargs):
        self.suffix = uuid.uuid4().hex[:8]
        self.put = put_volume_file
        self.path = f"/Volumes/ecom/raw/reports/test_{self.suffix}/2019-11-30/drift_summary.json"
        sensor_kwargs.setdefault("training_dag_id", f"model_training_{self.suffix}")
        sensor_kwargs.setdefault("poke_interval", 1)
        with DAG(
            dag_id=f"drift_{self.suffix}",
            schedule=None,
            start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
            default_args={"retries": 0},
        ) as self.dag:
            sensor = DriftBranchSensor(
                task_id="wait_for_drift",
                summary_path=f"/Volumes/ecom/raw/reports/test_{self.suffix}/{{{{ ds }}}}/drift_summary.json",
                **sensor_kwargs,
            )
            sensor >> [
                EmptyOperator(task_id="trigger_retraining"),
                EmptyOperator(task_id="skip_retraining"),
            ]
        serialize(self.dag)

    def write(self, summary: dict) -> None:
        self.put(self.path, json.dumps(summary))

    def run(self):
        self.dag_run = self.dag.test(logical_date=LOGICAL_DATE)
        self.states = {ti.task_id: ti.state for ti in self.dag_run.get_task_instances()}
        return self.dag_run

    def decision(self) -> dict:
        return xcom(self.dag.dag_id, self.dag_run.run_id, "wait_for_drift", "drift_decision")


TRIGGERED = {
    "wait_for_drift": "success",
    "trigger_retraining": "success",
    "skip_retraining": "skipped",
}
SKIPPED = {
    "wait_for_drift": "success",
    "trigger_retraining": "skipped",
    "skip_retraining": "success",
}


def test_drift_above_the_threshold_triggers_retraining(
    airflow_db, databricks_conn, put_volume_file, capfd
):
    scenario = _Scenario(put_volume_file)
    scenario.write(_summary())
    assert scenario.run().state == "success"
    assert scenario.states == TRIGGERED
    decision = scenario.decision()
    assert decision["decision"] == "trigger_retraining"
    assert decision["reason"] == "drift"
    assert (decision["drift_share"], decision["threshold"], decision["status"]) == (
        0.45,
        0.3,
        "drift",
    )
    assert "Drift decision: trigger_retraining, reason drift: drift share 0.45 >= 0.3" in "".join(
        capfd.readouterr()
    )


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        (_summary(status="no_drift", drift_share=0.1), "below_threshold"),
        (
            _summary(status="insufficient_data", drift_share=None, sufficient=False),
            "insufficient_data",
        ),
        (
            _summary(last_drift_retraining={"as_of": "2019-11-25", "run_id": "drift__x"}),
            "cooldown",
        ),
    ],
    ids=["below_threshold", "insufficient_data", "cooldown"],
)
def test_no_retraining_when_not_due(airflow_db, databricks_conn, put_volume_file, summary, reason):
    scenario = _Scenario(put_volume_file, cooldown=timedelta(days=14))
    scenario.write(summary)
    assert scenario.run().state == "success"
    assert scenario.states == SKIPPED
    decision = scenario.decision()
    assert (decision["decision"], decision["reason"]) == ("skip_retraining", reason)
    assert decision["status"] == summary["status"]


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
        run_id=RETRAINING_RUN_ID,
        logical_date=None,
        run_after=pendulum.now("UTC"),
        run_type=DagRunType.MANUAL,
        triggered_by=DagRunTriggeredByType.TEST,
        state=DagRunState.RUNNING,
    )
    scenario = _Scenario(put_volume_file, training_dag_id=training_dag_id)
    scenario.write(_summary())
    assert scenario.run().state == "success"
    assert scenario.states == SKIPPED
    decision = scenario.decision()
    assert (decision["decision"], decision["reason"]) == ("skip_retraining", "in_flight")
    assert RETRAINING_RUN_ID in decision["detail"]


def test_the_sensor_reschedules_until_the_summary_appears(
    airflow_db, databricks_conn, put_volume_file
):
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.settings import Session

    scenario = _Scenario(put_volume_file)
    writer = threading.Timer(4, scenario.write, args=(_summary(),))
    writer.start()
    try:
        started = time.monotonic()
        assert scenario.run().state == "success"
    finally:
        writer.join()
    assert time.monotonic() - started >= 4
    assert scenario.states == TRIGGERED
    ti = next(t for t in scenario.dag_run.get_task_instances() if t.task_id == "wait_for_drift")
    with Session() as session:
        assert session.query(TaskReschedule).filter_by(ti_id=ti.id).count() >= 1


def test_a_summary_that_never_appears_times_out_naming_the_path(
    airflow_db, databricks_conn, put_volume_file, capfd
):
    scenario = _Scenario(put_volume_file, timeout=3)
    assert scenario.run().state == "failed"
    assert scenario.states == {
        "wait_for_drift": "failed",
        "trigger_retraining": "upstream_failed",
        "skip_retraining": "upstream_failed",
    }
    log = "".join(capfd.readouterr())
    assert f"Waiting for the drift summary {scenario.path}" in log
    assert f"The drift summary {scenario.path} did not appear within 3 s" in log


def test_defaults_and_threshold_override():
    sensor = DriftBranchSensor(task_id="drift", summary_path="/Volumes/x/y/z/s.json", threshold=0.5)
    assert sensor.mode == "reschedule"
    assert sensor.cooldown == timedelta(days=14)
    assert (sensor.trigger_task_id, sensor.skip_task_id) == (
        "trigger_retraining",
        "skip_retraining",
    )
    assert sensor.training_dag_id == "model_training"
    assert sensor.retraining_run_id == "drift__{{ ds }}"
    # The operator's threshold wins over the summary's (0.45 drifts at 0.3, not at 0.5).
    decision = sensor.decide(_summary(drift_share=0.45, threshold=0.3), context={})
    assert (decision["decision"], decision["reason"], decision["threshold"]) == (
        "skip_retraining",
        "below_threshold",
        0.5,
    )


@pytest.mark.parametrize(
    ("run_type", "conf", "held"),
    [
        ("backfill", None, True),  # a backfill of old months reports drift, retrains nothing
        ("backfill", {"retrain": "yes"}, True),  # only a real true lets it
        ("backfill", {"retrain": True}, False),  # the backfill asked to retrain
        ("scheduled", None, False),
        ("manual", None, False),
    ],
)
def test_a_backfill_reports_drift_but_retrains_only_when_its_conf_asks(run_type, conf, held):
    sensor = DriftBranchSensor(task_id="check_drift", summary_path="/Volumes/x/y/z/s.json")
    context = {"dag_run": task_dag_run(run_type, conf)}
    assert (sensor.backfill_hold(context) is not None) is held
    if held:  # decided before anything else is asked (no run count needed)
        decision = sensor.decide(_summary(), context)
        assert (decision["decision"], decision["reason"]) == ("skip_retraining", "backfill")
        assert decision["detail"].startswith("drift share 0.45 >= 0.3, but run backfill__")
        assert '{"retrain": true}' in decision["detail"]
    # Below the threshold a backfill says so: the hold is only about retraining.
    quiet = sensor.decide(_summary(status="no_drift", drift_share=0.1), context)
    assert quiet["reason"] == "below_threshold"
