"""End to end through the full local stack: `make up`'s services, the real scheduler, a
backfill created through the REST API as from the UI, jobs on the local workspace, and the
on-call path of clearing a successful task."""

from __future__ import annotations

import json
import time

import pytest

from local.story.story import PIPELINES, run_job, workspace_client
from tests.support.e2e import BACKFILL_DAYS, BLOCKING_DAY, WARNING_DAY

# Each test waits up to 20 minutes per DAG for its runs: the suite-wide 15-minute timeout
# would cut a slow but healthy run on a busy CI machine.
pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.airflow, pytest.mark.timeout(3600)]

DAG_ID = "data_quality_validation"
DAYS = BACKFILL_DAYS  # the shared backfill's dates (tests/support/e2e.py)


def _bronze_summary(workspace) -> dict:
    path = "/Volumes/ecom/raw/system/e2e_summary.json"
    parameters = ["--catalog", "spark_catalog", "--output", path]
    run_job(workspace, "summary", "local/jobs/table_summary.py", parameters)
    summary = json.loads(workspace.files.download(path).contents.read())
    return {t["name"]: t for t in summary["tables"]} | {"reasons": summary["quarantine_reasons"]}


def _ingest_runs(workspace, ds: str) -> list:
    return [r for r in workspace.jobs.list_runs() if r.run_name == f"{DAG_ID}.ingest_events [{ds}]"]


def test_stack_env_names_what_the_clients_read(stack):
    text = (stack.state / "stack.env").read_text()
    for name in (
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
        "MLFLOW_TRACKING_URI",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AIRFLOW_API_URL",
        "AIRFLOW_USERNAME",
        "AIRFLOW_PASSWORD",
    ):
        assert f"export {name}=" in text


def test_backfill_lands_the_days_and_clear_reruns_the_job(stack, airflow, daily_backfill):
    workspace = workspace_client(stack)
    # The whole daily chain, backfilled at once as from the UI (the shared backfill).
    all_runs = daily_backfill
    dates = [*DAYS, WARNING_DAY, BLOCKING_DAY]  # the gate test checks the last two
    for dag_id, runs in all_runs.items():
        backfill_runs = [r for r in runs if r["run_type"] == "backfill"]
        assert sorted(r["logical_date"][:10] for r in backfill_runs) == dates, dag_id
        clean = [r for r in backfill_runs if r["logical_date"][:10] in DAYS]
        assert {r["state"] for r in clean} == {"success"}, dag_id
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
        [ti] = [
            t
            for t in airflow.task_instances(DAG_ID, target["dag_run_id"])
            if t["task_id"] == "ingest_events"
        ]
        if ti["state"] == "success" and ti["try_number"] > 1:
            break
        assert ti["state"] != "failed", "cleared task failed"
        assert time.monotonic() < deadline, f"cleared task still {ti['state']}"
        time.sleep(3)
    assert [r.state.result_state.value for r in _ingest_runs(workspace, DAYS[0])] == [
        "SUCCESS",
        "SUCCESS",
    ]
    after = _bronze_summary(workspace)
    for table in ("bronze.events", "bronze.events_quarantine"):
        assert after[table]["checksum"] == before[table]["checksum"], table
        assert after[table]["rows"] == before[table]["rows"], table
    assert after["bronze.events"]["version"] > before["bronze.events"]["version"]


def _report_blob(stack, ds: str):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(stack.azure_connection_string)
    blob = service.get_blob_client("reports", f"data_quality_validation/{ds}/bronze_events.html")
    return blob.get_blob_properties(), blob.download_blob().readall().decode()


def test_a_blocking_expectation_stops_the_date_downstream_and_a_warning_does_not(
    stack, airflow, daily_backfill
):
    """Great Expectations gate through the whole stack (the shared backfill's last two dates):
    a warning day flows through the chain, a blocking day stops at the gate (no retry) and its
    downstream DAGs fail their sensors; the report of both days is in Azurite (uploaded before
    the gate decides)."""
    workspace = workspace_client(stack)
    runs = daily_backfill
    state = {
        (dag_id, r["logical_date"][:10]): r["state"] for dag_id, rs in runs.items() for r in rs
    }
    for dag_id in PIPELINES:
        assert state[(dag_id, WARNING_DAY)] == "success", dag_id
        assert state[(dag_id, BLOCKING_DAY)] == "failed", dag_id

    blocked = next(r for r in runs[DAG_ID] if r["logical_date"].startswith(BLOCKING_DAY))
    tis = {t["task_id"]: t for t in airflow.task_instances(DAG_ID, blocked["dag_run_id"])}
    assert tis["upload_bronze_events_report"]["state"] == "success"
    assert tis["check_bronze_events_gate"]["state"] == "failed"
    assert tis["check_bronze_events_gate"]["try_number"] == 1  # data does not heal by retrying
    offline = next(
        r for r in runs["offline_feature_table"] if r["logical_date"].startswith(BLOCKING_DAY)
    )
    offline_tis = {
        t["task_id"]: t["state"]
        for t in airflow.task_instances("offline_feature_table", offline["dag_run_id"])
    }
    assert offline_tis["wait_for_data_quality_validation"] == "failed"
    assert offline_tis["build_silver_events"] == "upstream_failed"

    summary_of = {}
    for ds in (WARNING_DAY, BLOCKING_DAY):
        path = f"/Volumes/ecom/raw/reports/data_quality_validation/{ds}/bronze_events.json"
        summary_of[ds] = json.loads(workspace.files.download(path).contents.read())
        properties, html = _report_blob(stack, ds)
        assert properties.content_settings.content_type.startswith("text/html")
        assert ds in html
    warning = summary_of[WARNING_DAY]
    assert warning["success"] is True
    assert any(w["column"] == "price" for w in warning["warnings"])
    blocking = summary_of[BLOCKING_DAY]
    assert blocking["success"] is False
    assert any("quarantine_share" in (f["column"] or "") for f in blocking["blocking_failures"])
