"""The real DatabricksSubmitRunOperator, hook and trigger against the local workspace.

Nothing here is mocked: the operator talks HTTP to a running workspace server that runs the
job scripts on local Spark, and DAG runs go through Airflow's own ``dag.test()`` machinery
(metadata database, execution API, task state store, triggers run inline).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowException
from airflow.providers.databricks.hooks.databricks import DatabricksHook
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger
from airflow.sdk import DAG
from databricks.sdk import WorkspaceClient

from ecom_airflow.config import LOCAL
from tests.support.airflow import serialize

pytestmark = [pytest.mark.airflow, pytest.mark.spark]

HELLO = "local/jobs/hello_delta.py"
SLEEP = "local/jobs/sleep_job.py"
FAIL = "local/jobs/fail_job.py"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _runs_named(workspace, run_name: str) -> list:
    client = WorkspaceClient(host=workspace.url, token=workspace.token)
    return [run for run in client.jobs.list_runs() if run.run_name == run_name]


def _operator(run_name: str, python_file: str, parameters: list[str], **kwargs):
    kwargs.setdefault("task_id", "job")
    kwargs.setdefault("polling_period_seconds", 1)
    return DatabricksSubmitRunOperator(
        run_name=run_name, tasks=[_task(python_file, parameters)], **kwargs
    )


def _task(python_file: str, parameters: list[str]) -> dict:
    """One task in the multi-task form the project sends (Jobs API 2.1+)."""
    return {
        "task_key": "job",
        "new_cluster": LOCAL.new_cluster,
        "spark_python_task": {"python_file": python_file, "parameters": parameters},
    }


def _one_task_dag(dag_id: str, **operator_kwargs) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
        default_args={"retries": 0},
    ) as dag:
        _operator(**operator_kwargs)
    serialize(dag)
    return dag


def _task_instance(dag_run, session):
    from airflow.models.taskinstance import TaskInstance

    return session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).one()


def _xcom(dag_run, key: str, session):
    from airflow.models.xcom import XComModel

    row = (
        session.query(XComModel)
        .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id="job", key=key)
        .one()
    )
    return XComModel.deserialize_value(row)


LOGICAL_DATE = pendulum.datetime(2019, 10, 3, tz="UTC")


def test_sync_success_pushes_the_run_page_url(airflow_db, workspace, databricks_conn):
    run_name = _name("sync-ok")
    table = f"smoke.t_{uuid.uuid4().hex[:8]}"
    dag = _one_task_dag(
        _name("sync_ok"), run_name=run_name, python_file=HELLO, parameters=["--table", table]
    )
    dag_run = dag.test(logical_date=LOGICAL_DATE)
    assert dag_run.state == "success"
    [run] = _runs_named(workspace, run_name)
    assert run.state.result_state.value == "SUCCESS"
    session = airflow_db.Session()
    assert _xcom(dag_run, "run_id", session) == run.run_id
    page = _xcom(dag_run, "run_page_url", session)
    assert page == run.run_page_url
    assert page.startswith(f"{workspace.url}/jobs/runs/")


def test_sync_failure_carries_the_job_error_into_the_airflow_exception(workspace, databricks_conn):
    op = _operator(
        _name("sync-fail"),
        FAIL,
        ["--message", "bad input for 2019-10-01"],
        durable=False,
        do_xcom_push=False,
    )
    with pytest.raises(AirflowException, match="ValueError: bad input for 2019-10-01"):
        op.execute({})


def test_run_timeout_ends_as_timedout(workspace, databricks_conn):
    op = _operator(
        _name("timeout"),
        SLEEP,
        ["--seconds", "60"],
        timeout_seconds=3,
        durable=False,
        do_xcom_push=False,
    )
    with pytest.raises(AirflowException, match="TIMEDOUT"):
        op.execute({})


def test_on_kill_cancels_the_run(workspace, databricks_conn):
    run_name = _name("cancel")
    op = _operator(
        run_name,
        SLEEP,
        ["--seconds", "60"],
        wait_for_termination=False,
        durable=False,
        do_xcom_push=False,
    )
    op.execute({})
    op.on_kill()
    hook = DatabricksHook(databricks_conn_id=databricks_conn)
    deadline = pendulum.now().add(seconds=30)
    while hook.get_run_state(op.run_id).life_cycle_state != "TERMINATED":
        assert pendulum.now() < deadline, "cancelled run did not terminate"
        time.sleep(0.5)
    assert hook.get_run_state(op.run_id).result_state == "CANCELED"


def test_idempotency_token_returns_the_existing_run(workspace, databricks_conn):
    hook = DatabricksHook(databricks_conn_id=databricks_conn)
    payload = {
        "run_name": _name("idem"),
        "tasks": [_task(SLEEP, ["--seconds", "1"])],
        "idempotency_token": uuid.uuid4().hex,
    }
    first = hook.submit_run(payload)
    assert hook.submit_run(payload) == first
    assert len(_runs_named(workspace, payload["run_name"])) == 1


def test_deferrable_success_and_failure(airflow_db, workspace, databricks_conn):
    run_name = _name("deferred-ok")
    dag = _one_task_dag(
        _name("deferred_ok"),
        run_name=run_name,
        python_file=SLEEP,
        parameters=["--seconds", "1"],
        deferrable=True,
    )
    assert dag.test(logical_date=LOGICAL_DATE).state == "success"
    assert [r.state.result_state.value for r in _runs_named(workspace, run_name)] == ["SUCCESS"]

    # The failure path of the trigger and execute_complete, with the job's error text.
    op = _operator(_name("deferred-fail"), FAIL, ["--message", "deferred boom"], deferrable=True)
    hook = DatabricksHook(databricks_conn_id=databricks_conn)
    run_id = hook.submit_run({"run_name": op.run_name, "tasks": op.tasks})
    trigger = DatabricksExecutionTrigger(
        run_id=run_id, databricks_conn_id=databricks_conn, polling_period_seconds=1
    )

    async def first_event():
        async for event in trigger.run():
            return event.payload

    event = asyncio.run(first_event())
    assert event["run_state"] and "FAILED" in event["run_state"]
    with pytest.raises(AirflowException, match="ValueError: deferred boom"):
        op.execute_complete(context={}, event=event)


def test_retry_after_a_failed_run_submits_a_new_run(airflow_db, workspace, databricks_conn):
    run_name = _name("retry-failed")
    dag = _one_task_dag(
        _name("retry_failed"),
        run_name=run_name,
        python_file=FAIL,
        parameters=["--message", "always fails"],
        retries=1,
        retry_delay=timedelta(seconds=1),
        idempotency_token="{{ ti.id }}",
    )
    assert dag.test(logical_date=LOGICAL_DATE).state == "failed"
    runs = _runs_named(workspace, run_name)
    assert [r.state.result_state.value for r in runs] == ["FAILED", "FAILED"]


def test_clearing_a_successful_task_reruns_the_job(
    airflow_db, workspace, databricks_conn, monkeypatch
):
    """`make up` sets [state_store] clear_on_success, so a cleared task runs its job again
    (the e2e test proves the same through the UI's clear endpoint on the real scheduler)."""
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
    run_name = _name("clear")
    dag = _one_task_dag(
        _name("clear"),
        run_name=run_name,
        python_file=SLEEP,
        parameters=["--seconds", "0"],
        idempotency_token="{{ ti.id }}",
    )
    assert dag.test(logical_date=LOGICAL_DATE).state == "success"
    # dag.test() clears the task instances of the logical date before running again.
    assert dag.test(logical_date=LOGICAL_DATE).state == "success"
    assert len(_runs_named(workspace, run_name)) == 2
