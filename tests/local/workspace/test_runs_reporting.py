"""What the local workspace reports about runs, as Databricks reports it: the phases' durations
on runs/get, and runs/list's filters and pages as ``databricks-sdk``'s ``jobs.list_runs`` sends
and follows them."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import pytest
import requests
from databricks.sdk.service.compute import ClusterSpec
from databricks.sdk.service.jobs import RunType, SparkPythonTask, SubmitTask

from local.workspace.routes.jobs import durations
from local.workspace.store import RunStore

pytestmark = pytest.mark.spark

SLEEP = "local/jobs/sleep_job.py"


def _submit(client, name: str, seconds: float) -> int:
    return client.jobs.submit(
        run_name=name,
        tasks=[
            SubmitTask(
                task_key="main",
                spark_python_task=SparkPythonTask(
                    python_file=SLEEP, parameters=["--seconds", str(seconds)]
                ),
                new_cluster=ClusterSpec(spark_version="local", node_type_id="local", num_workers=0),
            )
        ],
    ).run_id


def _wait(client, run_id: int):
    return client.jobs.wait_get_run_job_terminated_or_skipped(
        run_id=run_id, timeout=timedelta(minutes=5)
    )


def _get(ws, path: str, **params):
    return requests.get(
        f"{ws.url}/api/2.2/jobs/{path}",
        params=params,
        headers={"Authorization": f"Bearer {ws.token}"},
        timeout=10,
    )


@pytest.fixture(scope="module")
def two_runs(client):
    """Two runs submitted together on the module's one-slot workspace: the second queues while
    the first sleeps 2 s."""
    first = _submit(client, "phases.first [2019-10-01]", 2)
    second = _submit(client, "phases.second [2019-10-01]", 0)
    return _wait(client, first), _wait(client, second)


def test_runs_get_reports_the_phases_of_a_multi_task_run_on_its_task(two_runs):
    first, second = two_runs
    for run in (first, second):
        [task] = run.tasks
        # The multi-task form: the phases on the task, 0 at the top, the total in run_duration.
        assert (run.setup_duration, run.execution_duration, run.cleanup_duration) == (0, 0, 0)
        assert task.setup_duration >= 0 and task.cleanup_duration == 0
        assert task.execution_duration > 0
        assert run.run_duration == task.setup_duration + task.execution_duration
        assert run.run_duration == run.end_time - run.start_time
        assert task.new_cluster.node_type_id == "local"  # the task's compute, echoed
    assert first.tasks[0].execution_duration >= 2000  # it slept 2 s
    # The second waited in the queue while the first ran, and left it when the first ended.
    assert second.queue_duration >= 1500
    assert second.start_time >= first.end_time - 50
    assert first.queue_duration < second.queue_duration


def test_list_runs_filters_on_start_time_and_run_type_and_pages_like_databricks(
    ws, client, two_runs
):
    first, second = two_runs
    third = _wait(client, _submit(client, "phases.third [2019-10-02]", 0))
    window = {"start_time_from": first.start_time, "start_time_to": third.start_time}
    # The SDK follows next_page_token: one run a page still lists all three, newest first.
    listed = list(
        client.jobs.list_runs(**window, run_type=RunType.SUBMIT_RUN, expand_tasks=True, limit=1)
    )
    assert [r.run_id for r in listed] == [third.run_id, second.run_id, first.run_id]
    assert all(r.tasks and r.tasks[0].execution_duration > 0 for r in listed)
    # Both ends are included; outside them nothing.
    only_first = {"start_time_from": first.start_time, "start_time_to": first.start_time}
    assert [r.run_id for r in client.jobs.list_runs(**only_first)] == [first.run_id]
    later = {"start_time_from": third.start_time + 1}
    assert [r.run_id for r in client.jobs.list_runs(**later)] == []
    # Without expand_tasks, no task details (as Databricks answers).
    assert all(not r.tasks for r in client.jobs.list_runs(**window))
    assert list(client.jobs.list_runs(**window, run_type=RunType.JOB_RUN)) == []
    assert [r.run_id for r in client.jobs.list_runs(**window, completed_only=True)] == [
        third.run_id,
        second.run_id,
        first.run_id,
    ]
    assert list(client.jobs.list_runs(**window, active_only=True)) == []
    # A page of the raw API: the token goes on below the page's last run.
    page = _get(ws, "runs/list", limit=2, **window).json()
    assert [r["run_id"] for r in page["runs"]] == [third.run_id, second.run_id]
    assert page["has_more"] and page["next_page_token"] == str(second.run_id)
    rest = _get(ws, "runs/list", limit=2, page_token=page["next_page_token"], **window).json()
    assert [r["run_id"] for r in rest["runs"]] == [first.run_id]
    assert not rest["has_more"] and "next_page_token" not in rest


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 26}, "limit must be between 0 and 25"),
        ({"page_token": "abc"}, "Invalid page_token"),
        ({"run_type": "NOPE"}, "run_type must be one of"),
        ({"expand_tasks": "yes"}, "expand_tasks must be true or false"),
        ({"active_only": "true", "completed_only": "true"}, "cannot both be true"),
    ],
)
def test_bad_list_parameters_are_refused_naming_them(ws, params, message):
    response = _get(ws, "runs/list", **params)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in response.json()["message"]


def test_a_single_task_run_of_api_2_0_reports_its_phases_at_the_top(ws, client):
    response = requests.post(
        f"{ws.url}/api/2.0/jobs/runs/submit",
        json={"run_name": "flat", "spark_python_task": {"python_file": SLEEP}},
        headers={"Authorization": f"Bearer {ws.token}"},
        timeout=10,
    )
    run = _wait(client, response.json()["run_id"])
    assert run.execution_duration == run.tasks[0].execution_duration > 0
    assert run.setup_duration == run.tasks[0].setup_duration
    assert run.run_duration == run.setup_duration + run.execution_duration


def test_a_store_of_an_older_workspace_gains_the_running_time_column(tmp_path):
    """A state folder from before the setup duration was recorded still opens, its runs read
    with running_time 0 (their setup and execution then count as setup until they end)."""
    path = tmp_path / "runs.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, run_name TEXT NOT NULL, "
        "task_key TEXT NOT NULL, payload TEXT NOT NULL, python_file TEXT NOT NULL, "
        "parameters TEXT NOT NULL, idempotency_token TEXT UNIQUE, timeout_seconds INTEGER NOT "
        "NULL DEFAULT 0, life_cycle_state TEXT NOT NULL, result_state TEXT, state_message TEXT "
        "NOT NULL DEFAULT '', submit_time INTEGER NOT NULL, start_time INTEGER NOT NULL DEFAULT "
        "0, end_time INTEGER NOT NULL DEFAULT 0, error TEXT, error_trace TEXT, log_path TEXT NOT "
        "NULL DEFAULT '')"
    )
    old.execute(
        "INSERT INTO runs (run_name, task_key, payload, python_file, parameters, "
        "life_cycle_state, result_state, submit_time, start_time, end_time) VALUES "
        "('old', 'main', ?, 'x.py', '[]', 'TERMINATED', 'SUCCESS', 1000, 1500, 4000)",
        (json.dumps({"tasks": [{"task_key": "main"}]}),),
    )
    old.commit()
    old.close()
    store = RunStore(path)
    [run] = store.page(10)
    assert run["running_time"] == 0
    assert durations(run) == {
        "queue_duration": 500,
        "setup_duration": 2500,
        "execution_duration": 0,
        "cleanup_duration": 0,
        "run_duration": 2500,
    }
