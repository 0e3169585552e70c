"""A DAG running the real ingest job as the project's DAGs do, for the tests that run it with
``dag.test()`` in the test process (``tests/reliability/test_workspace_faults.py``), and looking
up its task instance.
"""

from __future__ import annotations

import dataclasses
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
