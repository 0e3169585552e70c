"""The DAG of ``tests/e2e/test_stack_worker_kill.py``, in the e2e stack's bundle of test DAGs
(``StackConfig.test_dags``, this folder): the stack's own scheduler, executor and workers run it.

One Databricks job on the local workspace (``local/jobs/sleep_job.py``, which sleeps for the
run's ``seconds`` param), submitted by the provider's durable ``DatabricksSubmitRunOperator``
as the pipeline DAGs' ``databricks_job`` builds it: the run id kept in the task state store, the
task instance id as ``idempotency_token``, one retry. The test kills the task's worker while
it polls; the scheduler notices the missing heartbeat and the retry reattaches to the run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk import DAG

from ecom_airflow.config import LOCAL
from ecom_airflow.tasks import OWNER

DAG_ID = "e2e_worker_kill"
TASK_ID = "run_long_job"
RUN_NAME = "{{ dag.dag_id }}.{{ task.task_id }} [{{ run_id }}]"

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
    default_args={"owner": OWNER, "retries": 1, "retry_delay": timedelta(seconds=5)},
    params={"seconds": 1},
    tags=["test"],
    doc_md=__doc__,
):
    DatabricksSubmitRunOperator(
        task_id=TASK_ID,
        run_name=RUN_NAME,
        tasks=[
            {
                "task_key": TASK_ID,
                "new_cluster": LOCAL.new_cluster,
                "spark_python_task": {
                    "python_file": "local/jobs/sleep_job.py",
                    "parameters": ["--seconds", "{{ params.seconds }}"],
                },
            }
        ],
        idempotency_token="{{ ti.id }}",
        databricks_conn_id=LOCAL.databricks_conn_id,
        polling_period_seconds=1,
        execution_timeout=timedelta(minutes=15),
    )
