"""The DAG of ``tests/e2e/test_stack_deadline_alerts.py``, in the e2e stack's bundle of test DAGs
(``StackConfig.test_dags``, this folder): the stack's own scheduler, triggerer and workers run
it, and it reaches the project's code the way the pipeline DAGs do.

One Databricks job on the local workspace (``local/jobs/sleep_job.py``, which sleeps for the
run's ``seconds`` param), under the project's deadline alert (``deadline_alert``, the one every
pipeline DAG has) with a deadline short enough for a test: ``DEADLINE`` after the run was queued.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk import DAG

from ecom_airflow.config import LOCAL
from ecom_airflow.tasks import OWNER, deadline_alert

DAG_ID = "e2e_deadline_alert"
TASK_ID = "run_slow_job"
# A run of a 1-second job takes 10 to 20 s from being queued (scheduling, the task process,
# the warm workspace): well within the deadline on a busy machine too.
DEADLINE = timedelta(seconds=60)

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
    default_args={"owner": OWNER, "retries": 0},
    params={"seconds": 1},
    deadline=deadline_alert(DEADLINE),
    tags=["test"],
    doc_md=__doc__,
):
    DatabricksSubmitRunOperator(
        task_id=TASK_ID,
        run_name="{{ dag.dag_id }}.{{ task.task_id }} [{{ run_id }}]",
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
        databricks_conn_id=LOCAL.databricks_conn_id,
        polling_period_seconds=1,
    )
