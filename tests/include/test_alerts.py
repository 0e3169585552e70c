"""Failure alerts: a failed Databricks task posts its error and run page URL to the webhook.

The DAG runs for real (``dag.test()``, the real operator against the local workspace, the real
Slack provider hook); only the chat service is replaced, by a local HTTP server that records
what the webhook receives.
"""

from __future__ import annotations

import uuid

import pendulum
import pytest
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk import DAG
from databricks.sdk import WorkspaceClient

from ecom_airflow.config import LOCAL
from ecom_airflow.tasks import DEFAULT_ARGS
from tests.support.airflow import serialize
from tests.support.webhook import alert_connection, webhook

pytestmark = [pytest.mark.airflow, pytest.mark.spark]

FAIL = "local/jobs/fail_job.py"


def _failing_dag(message: str):
    dag_id = f"alert_{uuid.uuid4().hex[:10]}"
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
        default_args=DEFAULT_ARGS | {"retries": 0},
    ) as dag:
        DatabricksSubmitRunOperator(
            task_id="ingest_events",
            run_name=f"{dag_id}.ingest_events",
            tasks=[
                {
                    "task_key": "ingest_events",
                    "new_cluster": LOCAL.new_cluster,
                    "spark_python_task": {
                        "python_file": FAIL,
                        "parameters": ["--message", message],
                    },
                }
            ],
            polling_period_seconds=1,
        )
    serialize(dag)
    return dag


def test_a_failed_databricks_task_posts_its_error_and_run_url(
    airflow_db, workspace, databricks_conn
):
    message = f"landing file missing for 2019-10-05 ({uuid.uuid4().hex[:6]})"
    dag = _failing_dag(message)
    with webhook() as (url, received), alert_connection(url):
        dag_run = dag.test(logical_date=pendulum.datetime(2019, 10, 5, tz="UTC"))
    assert dag_run.state == "failed"
    client = WorkspaceClient(host=workspace.url, token=workspace.token)
    [run] = [r for r in client.jobs.list_runs() if r.run_name == f"{dag.dag_id}.ingest_events"]
    assert len(received) == 1, received
    text = received[0]["text"]
    assert f"*{dag.dag_id}.ingest_events* failed for 2019-10-05 (try 1 of 1)" in text
    assert message in text, "the job's own error reaches on-call"
    assert f"Databricks run: {run.run_page_url}" in text
    assert f"Airflow run: {dag_run.run_id}" in text


@pytest.mark.parametrize("setup", ["no connection", "webhook answers 500"])
def test_alerting_problems_never_change_the_task_outcome(
    airflow_db, workspace, databricks_conn, setup
):
    dag = _failing_dag("bad input")
    with webhook(status=500) as (url, received):
        with alert_connection(url if setup == "webhook answers 500" else None):
            dag_run = dag.test(logical_date=pendulum.datetime(2019, 10, 6, tz="UTC"))
    assert dag_run.state == "failed"
    assert len(received) == (1 if setup == "webhook answers 500" else 0)
    [ti] = dag_run.get_task_instances()
    assert ti.state == "failed"
