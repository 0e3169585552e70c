"""``monitoring.job_runs`` filled from a live local workspace, and checked against it.

Real jobs run on the local workspace under the names the DAGs' job tasks give their runs (a
success, a failure and its retry) next to a run of another name; ``JobRunsToVolumeOperator``
lists them in a real DAG run (``dag.test()``) through the Jobs API and writes them to a Volume
through the Files API; ``collect_job_runs.py`` merges that file into Delta on local Spark. Each
row must say what ``runs/get`` says of its run, the foreign run must be ignored, and a second
collection must update the rows, never add any.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG
from collect_job_runs import main as collect_main
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.compute import ClusterSpec
from databricks.sdk.service.jobs import SparkPythonTask, SubmitTask

from clickstream.core.contracts import JOB_RUNS
from ecom_airflow.config import LOCAL
from ecom_airflow.tasks import RUN_NAME_PATTERN
from ecom_plugins import JobRunsToVolumeOperator
from tests.support.airflow import serialize, xcom
from tests.support.env import environment

pytestmark = [pytest.mark.airflow, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = "/Volumes/ecom/raw/reports/pipeline_monitoring/test/{{ ds }}/job_runs.jsonl"


def _submit(client: WorkspaceClient, name: str, python_file: str, parameters: list[str]) -> int:
    task = SubmitTask(
        task_key="main",
        spark_python_task=SparkPythonTask(python_file=python_file, parameters=parameters),
        new_cluster=ClusterSpec.from_dict(LOCAL.new_cluster),
    )
    return client.jobs.submit(run_name=name, tasks=[task]).run_id


def _listing_dag(dag_id: str, start: datetime, end: datetime) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
        default_args={"retries": 0},
    ) as dag:
        JobRunsToVolumeOperator(
            task_id="list_job_runs",
            output_path=OUTPUT,
            start_time=start.isoformat(),
            end_time=end.isoformat(),
            run_name_pattern=RUN_NAME_PATTERN,
        )
    serialize(dag)
    return dag


@pytest.fixture(scope="module")
def collected(airflow_db, databricks_conn, workspace, spark):
    """The runs, and the table after a first and a second collection of their window."""
    client = WorkspaceClient(host=workspace.url, token=workspace.token)
    pipeline = f"monitoring_{uuid.uuid4().hex[:8]}"
    began = datetime.now(UTC) - timedelta(seconds=1)
    runs = {
        "ok": _submit(
            client, f"{pipeline}.quick [2019-10-01]", "local/jobs/sleep_job.py", ["--seconds", "1"]
        ),
        "failed": _submit(client, f"{pipeline}.flaky [2019-10-01]", "local/jobs/fail_job.py", []),
        "foreign": _submit(
            client, f"adhoc-{pipeline}", "local/jobs/sleep_job.py", ["--seconds", "0"]
        ),
    }
    for run_id in runs.values():
        client.jobs.wait_get_run_job_terminated_or_skipped(
            run_id=run_id, timeout=timedelta(minutes=5)
        )
    # The retry of the failed task: a new run of the same name, as an Airflow retry submits.
    runs["retry"] = _submit(
        client, f"{pipeline}.flaky [2019-10-01]", "local/jobs/sleep_job.py", ["--seconds", "0"]
    )
    client.jobs.wait_get_run_job_terminated_or_skipped(
        run_id=runs["retry"], timeout=timedelta(minutes=5)
    )
    window = (began, datetime.now(UTC) + timedelta(seconds=1))
    dag = _listing_dag(pipeline, *window)
    schema = f"t_{uuid.uuid4().hex[:8]}"
    tables, listed = [], []
    for day in (2, 3):  # two collections of the same window, on two logical dates
        dag_run = dag.test(logical_date=pendulum.datetime(2019, 10, day, tz="UTC"))
        assert dag_run.state == "success"
        listed.append(xcom(pipeline, dag_run.run_id, "list_job_runs", "return_value"))
        ds = f"2019-10-0{day}"
        with environment(LOCAL_VOLUMES_ROOT=str(workspace.layout.volumes_root)):
            args = ["--ds", ds, "--catalog", "spark_catalog", "--monitoring-schema", schema]
            args += [
                "--input",
                OUTPUT.replace("{{ ds }}", ds),
                "--prices",
                LOCAL.prices.as_parameter(),
            ]
            assert collect_main([*args, "--airflow-run-id", dag_run.run_id]) == 0
        table = spark.table(JOB_RUNS.name("spark_catalog", schema))
        tables.append([r.asDict() for r in table.collect()])
    answers = {name: client.jobs.get_run(run_id) for name, run_id in runs.items()}
    return {
        "runs": runs,
        "answers": answers,
        "tables": tables,
        "listed": listed,
        "pipeline": pipeline,
    }


def test_the_listing_writes_the_dags_runs_and_ignores_the_others(collected, workspace):
    runs = collected["runs"]
    listed = collected["listed"][0]
    assert listed["runs"] >= 3 and listed["ignored"] >= 1
    path = (
        workspace.layout.volumes_root
        / "ecom/raw/reports/pipeline_monitoring/test/2019-10-02/job_runs.jsonl"
    )
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    ids = {line["run_id"] for line in lines}
    assert {runs["ok"], runs["failed"], runs["retry"]} <= ids
    assert runs["foreign"] not in ids
    # What runs/list with expand_tasks answers: the task and its phases are there.
    [ok] = [line for line in lines if line["run_id"] == runs["ok"]]
    assert ok["tasks"][0]["execution_duration"] > 0 and ok["run_type"] == "SUBMIT_RUN"


def test_every_row_says_what_runs_get_says_of_its_run(collected):
    rows = {r["run_id"]: r for r in collected["tables"][-1]}
    for name in ("ok", "failed", "retry"):
        run = collected["answers"][name]
        row = rows[run.run_id]
        [task] = run.tasks
        assert row["run_name"] == run.run_name
        assert (row["dag_id"], row["logical_date"].isoformat()) == (
            collected["pipeline"],
            "2019-10-01",
        )
        assert row["task_id"] == ("quick" if name == "ok" else "flaky")
        assert row["life_cycle_state"] == run.state.life_cycle_state.value
        assert row["result_state"] == run.state.result_state.value
        assert row["queue_seconds"] == run.queue_duration / 1000
        assert row["setup_seconds"] == task.setup_duration / 1000
        assert row["execution_seconds"] == task.execution_duration / 1000
        assert row["cleanup_seconds"] == task.cleanup_duration / 1000
        assert row["total_seconds"] == run.run_duration / 1000
        assert row["task_run_id"] == task.run_id
        assert row["start_time"].astimezone(UTC) == datetime.fromtimestamp(
            run.start_time / 1000, UTC
        )
        assert row["end_time"].astimezone(UTC) == datetime.fromtimestamp(run.end_time / 1000, UTC)
        # Priced as if on the dev cluster, over the cluster's life (no queue).
        assert row["billable_seconds"] == row["setup_seconds"] + row["execution_seconds"]
        assert row["estimated_cost_usd"] == pytest.approx(
            row["usd_per_hour"] * row["billable_seconds"] / 3600
        )
        assert row["estimated_cost_usd"] > 0
        assert row["price_basis"].startswith("as if on Standard_D4ds_v5")
    assert rows[collected["runs"]["failed"]]["result_state"] == "FAILED"
    assert rows[collected["runs"]["ok"]]["execution_seconds"] >= 1.0  # it slept 1 s


def test_the_foreign_run_is_ignored_and_a_second_collection_adds_no_row(collected):
    first, second = collected["tables"]
    ids = [r["run_id"] for r in second]
    assert len(ids) == len(set(ids)) == len(first)
    assert collected["runs"]["foreign"] not in ids
    assert all(r["run_name"].startswith(f"{r['dag_id']}.{r['task_id']} [") for r in second)
    # The second collection wrote the rows (its run id), with the same figures.
    before = {r["run_id"]: r for r in first}
    for row in second:
        assert row["collection_date"].isoformat() == "2019-10-03"
        same = {k: v for k, v in row.items() if k not in ("collection_date", "airflow_run_id")}
        assert same == {k: v for k, v in before[row["run_id"]].items() if k in same}


def test_the_pipeline_monitoring_dag_collects_reports_and_publishes_the_window(
    collected, workspace, azurite
):
    """The DAG of dags/pipeline_monitoring.py in a real run with a window given in its conf,
    as `make run` triggers it: its jobs on the workspace, the report in Blob."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(LOCAL.databricks_pool, 2, "job tasks", include_deferred=False)
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipeline_monitoring.py"))
    dag = bag.dags["pipeline_monitoring"]
    dag.deadline = None  # the deadline alert is tests/dags/test_deadlines.py's; dag.test() has none
    serialize(dag)
    answers = collected["answers"].values()
    start = min(a.start_time for a in answers) / 1000 - 1
    end = max(a.start_time for a in answers) / 1000 + 1
    window = {
        "start_time": datetime.fromtimestamp(start, UTC).isoformat(),
        "end_time": datetime.fromtimestamp(end, UTC).isoformat(),
    }
    dag_run = dag.test(logical_date=pendulum.datetime(2019, 10, 5, tz="UTC"), run_conf=window)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    summary_path = "ecom/raw/reports/pipeline_monitoring/2019-10-05/operations.json"
    summary = json.loads((workspace.layout.volumes_root / summary_path).read_text())
    jobs = {(j["dag_id"], j["task_id"]): j for j in summary["jobs"]}
    pipeline = collected["pipeline"]
    assert jobs[(pipeline, "flaky")]["runs"] == 2 and jobs[(pipeline, "flaky")]["retries"] == 1
    assert jobs[(pipeline, "flaky")]["failed"] == 1 and summary["failed"] >= 1
    assert summary["window"]["end"] == window["end_time"]
    assert summary["estimated_cost_usd"] > 0
    link = xcom("pipeline_monitoring", dag_run.run_id, "upload_operations_report", "report_link")
    assert "pipeline_monitoring/2019-10-05/operations.html" in link
