"""The DAG of ``tests/security/test_log_masking.py``, in a file of its own: the real task
supervisor starts a task process that parses the DAG again from its file (environment variables
carry the values of the test session).

Tasks: a Databricks job that succeeds and one that fails on a crafted date (the project's
``databricks_job`` factory; ``databricks_default``'s password is the workspace token; the
failure alert goes to the ``ecom_alerts`` webhook, whose URL is its secret), a report published to Blob
with ``wasb_default`` (Azurite's account key), and a careless task that prints and logs both
secrets outright.
"""

from __future__ import annotations

import logging
import os

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from ecom_airflow.alerts import ALERT_CONN_ID, notify_failure
from ecom_airflow.tasks import databricks_job
from ecom_plugins import HtmlReportToBlobOperator

DAG_ID = "security_log_masking"
REPORT_ENV = "ECOM_SECURITY_REPORT_PATH"
PIPELINE_ENV = "ECOM_SECURITY_PIPELINE"
LANDING = "/Volumes/ecom/raw/landing/security_log_masking"
CRAFTED_DS = "2019-10-01' OR '1'='1"


def careless_task() -> None:
    """What a careless task author might write: print and log the connections' secrets."""
    from airflow.sdk import BaseHook

    databricks = BaseHook.get_connection("databricks_default")
    blob = BaseHook.get_connection("wasb_default").extra_dejson["connection_string"]
    webhook = BaseHook.get_connection(ALERT_CONN_ID).password
    log = logging.getLogger("careless")
    for name, value in (("token", databricks.password), ("blob", blob), ("webhook", webhook)):
        print(f"careless print: {name}={value}")
        log.warning("careless log: %s=%s", name, value)


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
    default_args={"retries": 0},
) as dag:
    job_ok = databricks_job(
        task_id="job_ok",
        script="generate_events.py",
        parameters={
            "--start-date": "2019-10-01",
            "--days": "1",
            "--users": "20",
            "--events-per-day": "50",
            "--landing-dir": LANDING,
        },
        pool="default_pool",
    )
    job_fails = databricks_job(  # refused in one line (tests/security/test_sql_parameters.py)
        task_id="job_fails",
        script="build_silver_events.py",
        parameters={"--ds": CRAFTED_DS, "--catalog": "spark_catalog"},
        pool="default_pool",
        on_failure_callback=notify_failure,
    )
    publish = HtmlReportToBlobOperator(
        task_id="publish_report",
        report_path=os.environ.get(REPORT_ENV, "/Volumes/ecom/raw/reports/security/r.html"),
        pipeline=os.environ.get(PIPELINE_ENV, "security"),
        report_name="r",
    )
    careless = PythonOperator(task_id="careless", python_callable=careless_task)
    job_ok >> [job_fails, publish, careless]
