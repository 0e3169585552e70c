"""The weekly table maintenance DAG: its schedule, and the job it runs with the environment's
retention, the two registered models and the week's Z-order window, locally and as rendered for
Databricks (``deploy/payloads.py``). The job itself: ``tests/spark_jobs/maintenance``."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk.execution_time import macros
from airflow.serialization.encoders import coerce_to_core_timetable
from airflow.timetables.base import TimeRestriction

from deploy import payloads
from ecom_airflow.config import JOB_LIBRARIES, LOCAL
from ecom_airflow.tasks import WEEKLY_CRON, job_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dag():
    bag = DagBag(dag_folder=str(ROOT / "dags" / "table_maintenance.py"))
    assert bag.import_errors == {}
    return bag.dags["table_maintenance"]


def _flags(parameters: list[str]) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for flag, value in zip(parameters[::2], parameters[1::2], strict=True):
        flags.setdefault(flag, []).append(value)
    return flags


def test_the_dag_runs_weekly_on_sunday_morning_one_run_at_a_time(dag):
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == (WEEKLY_CRON, "UTC")
    assert WEEKLY_CRON == "0 6 * * 0"
    assert dag.max_active_runs == 1 and dag.catchup is False
    # The run of a Sunday starts once its week has ended.
    info = coerce_to_core_timetable(dag.timetable).next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(
            earliest=pendulum.datetime(2019, 11, 1, tz="UTC"), latest=None, catchup=True
        ),
    )
    assert info.data_interval.start == pendulum.datetime(2019, 11, 3, 6, tz="UTC")
    assert info.run_after == pendulum.datetime(2019, 11, 10, 6, tz="UTC")


def test_the_job_gets_the_retention_the_models_and_the_week_to_zorder(dag):
    [task] = dag.tasks
    assert isinstance(task, DatabricksSubmitRunOperator)
    spark_task = job_task(task.json)["spark_python_task"]
    assert spark_task["python_file"] == "spark_jobs/maintain_tables.py"
    flags = _flags(spark_task["parameters"])
    assert flags == {
        "--catalog": [LOCAL.catalog],
        "--retention-hours": ["1"],  # LOCAL.vacuum_retention
        "--pin-margin-hours": ["192"],  # a week until the next run, and a day
        "--model-name": [LOCAL.model_name, LOCAL.recommender_name],
        "--zorder-since": ["{{ macros.ds_add(ds, -7) }}"],
    }
    since = dag.get_template_env().from_string(flags["--zorder-since"][0])
    assert since.render(ds="2019-11-03", macros=macros) == "2019-10-27"
    assert task.execution_timeout.total_seconds() == 3 * 3600


def test_databricks_renders_the_run_with_the_environments_values(monkeypatch):
    for name in ("ECOM_CLUSTER_POLICY_ID", "ECOM_POLICY_LIBRARIES", "ECOM_COMPUTE"):
        monkeypatch.delenv(name, raising=False)
    rendered = payloads.render_payloads(
        "prod", git_url="https://git.example.com/ecom.git", git_ref="v1.0.0"
    )
    [payload] = [p for p in rendered if p.dag_id == "table_maintenance"]
    assert payload.problems == ()
    task = job_task(payload.body)
    flags = _flags(task["spark_python_task"]["parameters"])
    assert flags["--catalog"] == ["ecom_prod"]
    assert flags["--retention-hours"] == ["720"]  # 30 days
    assert flags["--model-name"] == ["ecom_prod.ml.propensity", "ecom_prod.ml.recommender"]
    assert flags["--zorder-since"] == ["2019-10-27"]  # the run of Sunday 2019-11-03
    # The job imports MLflow and nothing else the runtime lacks: one library to install.
    mlflow = [pin for pin in JOB_LIBRARIES if pin.startswith("mlflow==")]
    assert task["libraries"] == [{"pypi": {"package": pin}} for pin in mlflow]
    assert payload.body["run_name"] == "table_maintenance.maintain_tables [2019-11-03]"
