"""Pipeline monitoring on the full local stack, as ``make run`` ends: the pipeline_monitoring DAG
backfilled with the window of the shared backfill's runs (the real scheduler, the local
workspace, Azurite), then every row of ``monitoring.job_runs`` compared with the workspace's
``runs/get`` for its run (``local.story.story.read_operations``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from ecom_airflow.tasks import RUN_NAME_PATTERN
from local.story.story import (
    MONITORING_PIPELINE,
    PIPELINES,
    Outcome,
    monitor_pipeline,
    read_operations,
    workspace_client,
)
from local.story.summary import monitoring_checks, print_operations_summary
from tests.support.e2e import BACKFILL_DAYS, BLOCKING_DAY, WARNING_DAY

pytestmark = pytest.mark.e2e

MONITORING_DAY = "2019-10-06"  # a date of its own: no other test backfills the DAG


def test_the_chains_runs_are_collected_reported_and_match_runs_get(
    stack, airflow, daily_backfill, capsys
):
    airflow.wait_for_dags([MONITORING_PIPELINE])
    workspace = workspace_client(stack)
    days = {*BACKFILL_DAYS, WARNING_DAY, BLOCKING_DAY}
    ours = [
        run
        for run in workspace.jobs.list_runs()
        if (found := re.fullmatch(RUN_NAME_PATTERN, run.run_name or "")) and found["ds"] in days
    ]
    assert ours, "the shared backfill ran Databricks jobs"
    first = min(run.start_time for run in ours) / 1000
    started = (datetime.fromtimestamp(first, UTC) - timedelta(seconds=1)).isoformat()
    outcome = Outcome(airflow)
    story = SimpleNamespace(days=[MONITORING_DAY])
    monitor_pipeline(outcome, story, started, timeout_minutes=20)
    assert [r["state"] for r in outcome.runs[MONITORING_PIPELINE]] == ["success"]

    read_operations(workspace, outcome, story)
    assert outcome.job_runs["mismatches"] == []
    assert outcome.job_runs["rows"] >= len(ours)
    operations = outcome.operations
    assert operations["runs"] >= len(ours) and operations["estimated_cost_usd"] > 0
    jobs = {(j["dag_id"], j["task_id"]): j for j in operations["jobs"]}
    ingest = jobs[("data_quality_validation", "ingest_events")]
    assert ingest["runs"] >= len(days)  # a date cleared by another test is a retry
    assert ingest["retries"] == ingest["runs"] - len(days)
    assert {dag for dag, _ in jobs} <= {*PIPELINES, MONITORING_PIPELINE}
    assert operations["daily_chain"]["logical_date"] in days
    [check] = monitoring_checks(operations, outcome.job_runs)
    assert check.ok, check.detail
    print_operations_summary(operations)
    assert "Databricks runs of the DAGs" in capsys.readouterr().out
    [run] = outcome.runs[MONITORING_PIPELINE]
    link = airflow.xcom(
        MONITORING_PIPELINE, run["dag_run_id"], "upload_operations_report", "report_link"
    )
    assert f"{MONITORING_PIPELINE}/{MONITORING_DAY}/operations.html" in link
