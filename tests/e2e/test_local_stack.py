"""End to end through the full local stack: `make up`'s services, the real scheduler, a
backfill created through the REST API as from the UI, jobs on the local workspace, and the
on-call path of clearing a successful task."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tools.airflow_api import AirflowClient
from tools.run_system import PIPELINES, run_backfills, run_job, workspace_client
from tools.stack import StackConfig, down, up

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.airflow]

DAG_ID = "data_quality_validation"
DAYS = ["2019-10-01", "2019-10-02"]
LANDING = "/Volumes/ecom/raw/landing/events"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack(session_dir):
    config = StackConfig(
        state=session_dir / "e2e-stack",
        workspace_port=_free_port(),
        mlflow_port=_free_port(),
        azurite_port=_free_port(),
        airflow_port=_free_port(),
    )
    config.secrets = config._load_secrets()
    try:
        up(config)
        yield config
    finally:
        down(config)


@pytest.fixture(scope="module")
def airflow(stack):
    env = stack.client_env()
    client = AirflowClient(env["AIRFLOW_API_URL"], env["AIRFLOW_USERNAME"], env["AIRFLOW_PASSWORD"])
    client.wait_for_dags(PIPELINES)
    return client


def _bronze_summary(workspace) -> dict:
    path = "/Volumes/ecom/raw/system/e2e_summary.json"
    parameters = ["--catalog", "spark_catalog", "--output", path]
    run_job(workspace, "summary", "table_summary.py", parameters)
    summary = json.loads(workspace.files.download(path).contents.read())
    return {t["name"]: t for t in summary["tables"]} | {"reasons": summary["quarantine_reasons"]}


def _ingest_runs(workspace, ds: str) -> list:
    return [
        r for r in workspace.jobs.list_runs()
        if r.run_name == f"{DAG_ID}.ingest_events [{ds}]"
    ]  # fmt: skip


def test_stack_env_names_what_the_clients_read(stack):
    text = (stack.state / "stack.env").read_text()
    for name in (
        "DATABRICKS_HOST", "DATABRICKS_TOKEN", "MLFLOW_TRACKING_URI",
        "AZURE_STORAGE_CONNECTION_STRING", "AIRFLOW_API_URL", "AIRFLOW_USERNAME",
        "AIRFLOW_PASSWORD",
    ):  # fmt: skip
        assert f"export {name}=" in text


def test_backfill_lands_the_days_and_clear_reruns_the_job(stack, airflow):
    workspace = workspace_client(stack)
    run_job(
        workspace, "generate", "generate_events.py",
        ["--start-date", DAYS[0], "--days", str(len(DAYS)), "--landing-dir", LANDING,
         "--events-per-day", "2000"],
    )  # fmt: skip
    # The whole daily chain, backfilled at once as from the UI: each DAG's run of a date
    # waits for its upstream DAG's run of the same date.
    all_runs = run_backfills(airflow, PIPELINES, DAYS, timeout_minutes=20)
    for dag_id, runs in all_runs.items():
        backfill_runs = [r for r in runs if r["run_type"] == "backfill"]
        assert sorted(r["logical_date"][:10] for r in backfill_runs) == DAYS, dag_id
        assert {r["state"] for r in backfill_runs} == {"success"}, dag_id
    for ds in DAYS:
        assert [r.state.result_state.value for r in _ingest_runs(workspace, ds)] == ["SUCCESS"]

    before = _bronze_summary(workspace)
    assert before["bronze.events"]["rows"] > 0
    for table in ("silver.events", "silver.user_features", "gold.user_features_online"):
        assert before[table]["rows"] > 0, table
    assert before["silver.events"]["rows"] <= before["bronze.events"]["rows"]
    backfill_runs = [r for r in all_runs[DAG_ID] if r["run_type"] == "backfill"]

    # On-call reruns one date: clearing the successful task submits a new Databricks run,
    # and the rerun leaves the table content as it was (replaceWhere on the date).
    target = next(r for r in backfill_runs if r["logical_date"].startswith(DAYS[0]))
    airflow.clear_task(DAG_ID, target["dag_run_id"], "ingest_events")
    deadline = time.monotonic() + 600
    while True:
        [ti] = airflow.task_instances(DAG_ID, target["dag_run_id"])
        if ti["state"] == "success" and ti["try_number"] > 1:
            break
        assert ti["state"] != "failed", "cleared task failed"
        assert time.monotonic() < deadline, f"cleared task still {ti['state']}"
        time.sleep(3)
    assert [r.state.result_state.value for r in _ingest_runs(workspace, DAYS[0])] == [
        "SUCCESS", "SUCCESS",
    ]  # fmt: skip
    after = _bronze_summary(workspace)
    for table in ("bronze.events", "bronze.events_quarantine"):
        assert after[table]["checksum"] == before[table]["checksum"], table
        assert after[table]["rows"] == before[table]["rows"], table
    assert after["bronze.events"]["version"] > before["bronze.events"]["version"]
