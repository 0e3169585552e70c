"""Cross-DAG ordering: a daily DAG waits for its upstream DAG's run of the same logical date.

Runs the project's own sensor factory (``wait_for_dag``) in real DAG runs (``dag.test()``:
metadata database, deferral, the trigger run inline), against upstream DAG runs that really
succeeded or failed.
"""

from __future__ import annotations

import time
import uuid

import pendulum
import pytest
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from ecom_airflow.config import LOCAL
from ecom_airflow.tasks import DEFAULT_ARGS, wait_for_dag
from tests.support.airflow import serialize

pytestmark = pytest.mark.airflow

LOGICAL_DATE = pendulum.datetime(2019, 10, 5, tz="UTC")


def _fail() -> None:
    raise RuntimeError("blocking expectation failed")


def _dags(succeed: bool) -> tuple[DAG, DAG]:
    suffix = uuid.uuid4().hex[:8]
    common = {
        "schedule": "@daily",
        "start_date": pendulum.datetime(2019, 10, 1, tz="UTC"),
        "catchup": False,
    }
    with DAG(dag_id=f"upstream_{suffix}", default_args={"retries": 0}, **common) as upstream:
        PythonOperator(task_id="gate", python_callable=(lambda: None) if succeed else _fail)
    # The project's default args (two retries): the sensor itself has none.
    with DAG(dag_id=f"downstream_{suffix}", default_args=DEFAULT_ARGS, **common) as downstream:
        wait_for_dag(upstream.dag_id, env=LOCAL)
    for dag in (upstream, downstream):
        serialize(dag)
    return upstream, downstream


def _sensor_state(dag_run) -> str:
    return next(ti.state for ti in dag_run.get_task_instances())


def test_downstream_runs_once_the_same_date_succeeded_upstream(airflow_db):
    upstream, downstream = _dags(succeed=True)
    assert upstream.test(logical_date=LOGICAL_DATE).state == "success"
    run = downstream.test(logical_date=LOGICAL_DATE)
    assert run.state == "success"
    assert _sensor_state(run) == "success"


def test_a_failed_upstream_date_fails_the_downstream_date_at_once(airflow_db):
    upstream, downstream = _dags(succeed=False)
    assert upstream.test(logical_date=LOGICAL_DATE).state == "failed"
    started = time.monotonic()
    run = downstream.test(logical_date=LOGICAL_DATE)
    assert run.state == "failed"
    assert _sensor_state(run) == "failed"
    [sensor] = run.get_task_instances()
    assert sensor.try_number == 1, "a failed upstream date is not retried"
    # Failed fast on the upstream state, not after the sensor's timeout.
    assert time.monotonic() - started < LOCAL.sensor_timeout.total_seconds() / 10


def test_the_sensor_waits_for_the_same_logical_date_only():
    sensor = wait_for_dag("data_quality_validation", env=LOCAL)
    assert sensor.external_dag_id == "data_quality_validation"
    assert sensor.external_task_id is None  # the whole DAG run, i.e. every gate of the date
    assert sensor.execution_delta is None and sensor.execution_date_fn is None
    assert sensor.deferrable is True
    assert list(sensor.failed_states) == ["failed"]
