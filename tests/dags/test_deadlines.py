"""Deadline alerts on the pipeline DAGs, in every environment: each daily and monthly DAG has the
project's deadline (counted from when the run was queued, the environment's interval, the
project's callback), and no sensor of a DAG can wait so long that it times out before on-call
has heard of the late date from the deadline alert.

The alert itself, fired by the real scheduler and triggerer: ``tests/e2e/test_stack_deadline_alerts.py``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import AsyncCallback, BaseSensorOperator, DeadlineReference

from ecom_airflow.alerts import notify_deadline_missed
from ecom_airflow.config import ENVIRONMENT_NAMES, LOCAL, current_environment
from ecom_airflow.tasks import daily_dag, deadline_alert, monthly_dag, wait_for_dag

ROOT = Path(__file__).resolve().parents[2]
DAILY, MONTHLY = "0 0 * * *", "0 0 1 * *"  # the crons of daily_dag and monthly_dag
# The alert comes with at least this share of a sensor's wait left: time to chase a late
# export or a stuck upstream run before the sensor fails the date.
MIN_LEAD = 0.25


def alert_gaps(dag) -> list[str]:
    """Why the DAG's sensors could time out before its deadline alert reached on-call (the
    deadline missing, or too close to a sensor's timeout); empty when nothing can."""
    sensors = [t for t in dag.tasks if isinstance(t, BaseSensorOperator)]
    alerts = dag.deadline or []
    if not alerts:
        return [f"{dag.dag_id}: no deadline, yet {s.task_id} waits" for s in sensors]
    earliest = min(alert.interval for alert in alerts)
    gaps = []
    for sensor in sensors:
        timeout = timedelta(seconds=sensor.timeout)
        if earliest > timeout * (1 - MIN_LEAD):
            gaps.append(
                f"{dag.dag_id}: the deadline ({earliest}) leaves less than {MIN_LEAD:.0%} of "
                f"{sensor.task_id}'s timeout ({timeout}) before the sensor fails the run"
            )
    return gaps


@pytest.fixture(params=ENVIRONMENT_NAMES)
def environment_dags(request, monkeypatch, tmp_path):
    """Every DAG as the environment's DAG processor parses it, with that environment."""
    monkeypatch.setenv("ECOM_ENV", request.param)
    if request.param != "local":
        monkeypatch.setenv("ECOM_GIT_URL", "https://git.example.com/ecom.git")
        monkeypatch.setenv("ECOM_GIT_REF", "v1.0.0")
        monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return current_environment(), bag.dags


def test_every_daily_and_monthly_dag_has_the_deadline_of_its_environment(environment_dags):
    env, dags = environment_dags
    intervals = {DAILY: env.daily_deadline, MONTHLY: env.monthly_deadline}
    scheduled = {d for d in dags.values() if d.timetable.expression in intervals}
    assert {d.dag_id for d in scheduled} >= {
        "data_quality_validation",
        "offline_feature_table",
        "online_feature_table",
        "model_serving",
        "drift_detection",
    }
    for dag in scheduled:
        [alert] = dag.deadline
        assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT, dag.dag_id
        assert alert.interval == intervals[dag.timetable.expression], dag.dag_id
        assert alert.callback == AsyncCallback(notify_deadline_missed), dag.dag_id


def test_every_dag_alerts_before_its_sensors_time_out(environment_dags):
    _env, dags = environment_dags
    sensors = {
        (d.dag_id, t.task_id)
        for d in dags.values()
        for t in d.tasks
        if isinstance(t, BaseSensorOperator)
    }
    # The sensors that can wait for hours are among those checked.
    assert ("data_quality_validation", "wait_for_landing_files") in sensors
    assert ("model_serving", "wait_for_online_feature_table") in sensors
    assert ("drift_detection", "wait_for_offline_feature_table") in sensors
    assert ("drift_detection", "check_drift") in sensors
    assert [gap for dag in dags.values() for gap in alert_gaps(dag)] == []


def _dag_waiting(sensor_timeout: timedelta, **dag_kwargs):
    env = replace(LOCAL, sensor_timeout=sensor_timeout)
    with daily_dag("waits_for_upstream", doc_md=None, tags=["test"], **dag_kwargs) as dag:
        wait_for_dag("upstream", env=env)
    return dag


@pytest.mark.parametrize(
    ("sensor_timeout", "dag_kwargs", "gap"),
    [
        (LOCAL.daily_deadline * 4, {}, None),
        (LOCAL.daily_deadline * 1.2, {}, "leaves less than 25% of wait_for_upstream's timeout"),
        (LOCAL.daily_deadline / 2, {}, "leaves less than 25% of wait_for_upstream's timeout"),
        (LOCAL.daily_deadline * 4, {"deadline": None}, "no deadline, yet wait_for_upstream waits"),
        (timedelta(hours=1), {"deadline": deadline_alert(timedelta(hours=2))}, "(2:00:00)"),
    ],
    ids=["alert-in-time", "alert-too-close", "sensor-fails-first", "no-deadline", "dag-own"],
)
def test_the_check_finds_a_sensor_that_would_time_out_first(sensor_timeout, dag_kwargs, gap):
    gaps = alert_gaps(_dag_waiting(sensor_timeout, **dag_kwargs))
    if gap is None:
        assert gaps == []
    else:
        [found] = gaps
        assert gap in found


def test_monthly_dags_take_the_monthly_deadline():
    with monthly_dag("a_monthly_check", doc_md=None, tags=["test"]) as dag:
        pass
    [alert] = dag.deadline
    assert alert.interval == LOCAL.monthly_deadline != LOCAL.daily_deadline
