"""A DAG running the real ingest job as the project's DAGs do, and the Airflow steps a test
needs to play a worker crash: the scheduler failing the task instance, then its retry.

Also run as ``python -m tests.support.airflow_runs DAG_ID SCHEMA LOGICAL_DATE``: the
"worker" a test kills while the task polls its Databricks run (``dag.test()``, which runs the
task in this process through Airflow's execution API and task state store).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from datetime import timedelta

import pendulum

from tests.support.landing import LANDING

TASK_ID = "ingest_events"


def ingest_dag(dag_id: str, schema: str, **operator_kwargs):
    """One task, built by the DAGs' own ``databricks_job`` for the local environment: durable
    operator, ``idempotency_token`` = task instance id; one retry after a second."""
    from airflow.sdk import DAG

    from ecom_airflow.config import LOCAL
    from ecom_airflow.tasks import databricks_job
    from tests.support.airflow import serialize

    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
        default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
    ) as dag:
        databricks_job(
            task_id=TASK_ID,
            script="ingest_events.py",
            parameters={
                "--ds": "{{ ds }}",
                "--catalog": LOCAL.catalog,
                "--landing-dir": LANDING,
                "--bronze-schema": schema,
            },
            env=dataclasses.replace(LOCAL, polling_period_seconds=1),
            pool="default_pool",
            **operator_kwargs,
        )
    serialize(dag)
    return dag


def run_name(dag_id: str, ds: str) -> str:
    """The Databricks run name ``databricks_job`` renders for the task."""
    return f"{dag_id}.{TASK_ID} [{ds}]"


def task_instance(dag_id: str, session):
    from airflow.models.taskinstance import TaskInstance

    return session.query(TaskInstance).filter_by(dag_id=dag_id, task_id=TASK_ID).one()


def stored_run_id(ti) -> int | None:
    """The Databricks run id the durable operator keeps in the task state store."""
    from airflow.state import TaskScope, get_state_backend

    scope = TaskScope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=-1)
    value = get_state_backend().get(scope, "databricks_run_id")
    return None if value is None else int(json.loads(value) if isinstance(value, str) else value)


def fail_like_the_scheduler(dag, session) -> None:
    """What the scheduler does to a task instance whose worker stopped heartbeating: the
    executor reports it failed and ``handle_failure`` puts it up for retry (tries left)."""
    from airflow.serialization.serialized_objects import DagSerialization

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    ti = task_instance(dag.dag_id, session)
    ti.task = scheduler_dag.get_task(TASK_ID)
    ti.handle_failure(error="Task did not emit heartbeat within time limit", session=session)
    session.commit()


def resume(dag, session, timeout: float = 600):
    """Run the DAG run's schedulable task instances until it finishes: ``dag.test()``'s loop
    without its first step (clearing the task instances), so a retry stays a retry."""
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState, TaskInstanceState

    dag_run = session.query(DagRun).filter_by(dag_id=dag.dag_id).one()
    dag_run.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    deadline = time.monotonic() + timeout
    while dag_run.state == DagRunState.RUNNING:
        assert time.monotonic() < deadline, "the DAG run did not finish"
        session.expire_all()
        schedulable, _ = dag_run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        scheduled = [
            ti
            for ti in dag_run.get_task_instances(session=session)
            if ti.state == TaskInstanceState.SCHEDULED
        ]
        for ti in scheduled:
            _run_task(ti=ti, task=dag.task_dict[ti.task_id])
        if not scheduled:
            time.sleep(0.5)
    return dag_run


def main(argv: list[str]) -> int:
    dag_id, schema, logical_date = argv
    from airflow import settings

    settings.configure_orm()
    dag = ingest_dag(dag_id, schema)
    dag.test(logical_date=pendulum.parse(logical_date))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
