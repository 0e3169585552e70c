"""Jobs 2.2 runs API of the local workspace, through raw HTTP and the official databricks-sdk."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests
from databricks.sdk.service.jobs import SparkPythonTask, SubmitTask

from local.workspace.process import running_workspace
from tests.support.waiting import wait_for

pytestmark = pytest.mark.spark


def _submit(client, python_file, parameters=(), **kwargs):
    return client.jobs.submit(
        run_name=kwargs.pop("run_name", "test"),
        tasks=[
            SubmitTask(
                task_key="main",
                spark_python_task=SparkPythonTask(
                    python_file=python_file, parameters=list(parameters)
                ),
            )
        ],
        **kwargs,
    ).run_id


def _wait(client, run_id, minutes=5):
    return client.jobs.wait_get_run_job_terminated_or_skipped(
        run_id=run_id, timeout=timedelta(minutes=minutes)
    )


def _state(ws, run_id):
    response = requests.get(
        f"{ws.url}/api/2.2/jobs/runs/get",
        params={"run_id": run_id},
        headers={"Authorization": f"Bearer {ws.token}"},
        timeout=10,
    )
    return response.json()["state"]


def test_success_through_the_sdk_with_a_delta_table(client):
    run = _wait(client, _submit(client, "local/jobs/hello_delta.py", ["--table", "ws.t"]))
    assert run.state.result_state.value == "SUCCESS"
    assert run.tasks[0].run_id != run.run_id
    output = client.jobs.get_run_output(run.tasks[0].run_id)
    assert "sum of squares 285" in output.logs
    assert output.error is None


def test_failure_reports_error_and_trace(client):
    run = _wait(client, _submit(client, "local/jobs/fail_job.py", ["--message", "nope"]))
    assert run.state.life_cycle_state.value == "TERMINATED"
    assert run.state.result_state.value == "FAILED"
    output = client.jobs.get_run_output(run.tasks[0].run_id)
    assert output.error == "ValueError: nope"
    assert "fail_job.py" in output.error_trace


def test_timeout_ends_as_timedout(client):
    run = _wait(
        client,
        _submit(client, "local/jobs/sleep_job.py", ["--seconds", "60"], timeout_seconds=3),
    )
    assert run.state.result_state.value == "TIMEDOUT"
    # The driver killed by the timeout is replaced: the next run still works.
    nxt = _wait(client, _submit(client, "local/jobs/sleep_job.py", ["--seconds", "0"]))
    assert nxt.state.result_state.value == "SUCCESS"


def test_queueing_and_cancel_of_running_and_queued_runs(ws, client):
    first = _submit(client, "local/jobs/sleep_job.py", ["--seconds", "60"])
    second = _submit(client, "local/jobs/sleep_job.py", ["--seconds", "60"])
    wait_for(
        lambda: _state(ws, first)["life_cycle_state"] == "RUNNING",
        120,
        "the first run running",
        interval=0.3,
    )
    assert _state(ws, second)["life_cycle_state"] == "QUEUED"
    client.jobs.cancel_run(second)
    client.jobs.cancel_run(first)
    assert _wait(client, second).state.result_state.value == "CANCELED"
    assert _wait(client, first).state.result_state.value == "CANCELED"


def test_idempotency_token_returns_the_same_run(client):
    token = "tok-" + str(time.time_ns())
    a = _submit(client, "local/jobs/sleep_job.py", ["--seconds", "0"], idempotency_token=token)
    b = _submit(client, "local/jobs/sleep_job.py", ["--seconds", "0"], idempotency_token=token)
    assert a == b
    assert len([r for r in client.jobs.list_runs() if r.run_id == a]) == 1


def _task(python_file: str, **fields) -> dict:
    """A multi-task body (Jobs API 2.1+) with one spark_python_task."""
    task = {"task_key": "t", "spark_python_task": {"python_file": python_file}}
    return {"tasks": [task], **fields}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_task("../etc/passwd.py"), "must be a relative path to a .py file"),
        (_task("/etc/x.py"), "must be a relative path to a .py file"),
        (_task("local/workspace/driver.py"), "is outside the job folders"),
        (_task("spark_jobs/nope.py"), "not found"),
        ({"run_name": "no task"}, "$.tasks: missing: Jobs API 2.2 runs/submit takes its tasks"),
        (
            _task("local/jobs/fail_job.py", timeout_seconds="soon"),
            "$.timeout_seconds: expected an integer, got string 'soon'",
        ),
        # The single-task form of Jobs API 2.0, sent to 2.2: refused, naming the misplaced field.
        (
            {"spark_python_task": {"python_file": "local/jobs/sleep_job.py"}},
            "$.spark_python_task: a task field at the top level; move it into a task",
        ),
        (
            _task("local/jobs/sleep_job.py", new_clustr={}),
            "$.new_clustr: unknown key of runs/submit; did you mean 'new_cluster'?",
        ),
        (
            {"tasks": [{"spark_python_task": {"python_file": "local/jobs/sleep_job.py"}}]},
            "$.tasks[0].task_key: missing (required by jobs.SubmitTask)",
        ),
        (
            {
                "tasks": [
                    {**_task("local/jobs/sleep_job.py")["tasks"][0], "task_key": key}
                    for key in ("a", "b")
                ]
            },
            "local workspace runs exactly one task per run",
        ),
    ],
)
def test_bad_submissions_get_databricks_errors_naming_the_field(ws, body, message):
    response = requests.post(
        f"{ws.url}/api/2.2/jobs/runs/submit",
        json=body,
        headers={"Authorization": f"Bearer {ws.token}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in response.json()["message"]


def test_the_single_task_form_is_accepted_on_jobs_api_2_0(ws):
    response = requests.post(
        f"{ws.url}/api/2.0/jobs/runs/submit",
        json={"spark_python_task": {"python_file": "local/jobs/sleep_job.py"}},
        headers={"Authorization": f"Bearer {ws.token}"},
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["run_id"] > 0


def test_malformed_json_and_unknown_run(ws):
    headers = {"Authorization": f"Bearer {ws.token}"}
    bad = requests.post(
        f"{ws.url}/api/2.2/jobs/runs/submit", data="{nope", headers=headers, timeout=10
    )
    assert (bad.status_code, bad.json()["error_code"]) == (400, "MALFORMED_REQUEST")
    missing = requests.get(
        f"{ws.url}/api/2.2/jobs/runs/get", params={"run_id": 999999}, headers=headers, timeout=10
    )
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc"])
def test_requests_without_the_token_are_refused(ws, header):
    headers = {"Authorization": header} if header else {}
    response = requests.get(f"{ws.url}/api/2.2/jobs/runs/list", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_run_page_shows_state_and_log(ws, client):
    run = _wait(client, _submit(client, "local/jobs/fail_job.py", ["--message", "<b>x"]))
    page = requests.get(run.run_page_url, timeout=10).text
    assert "FAILED" in page and "about to fail" in page
    assert "&lt;b&gt;x" in page and "<b>x" not in page


def test_restart_marks_in_flight_runs_internal_error_and_cold_mode_runs_delta(session_dir):
    state = session_dir / "ws-restart"
    with running_workspace(state, mode="cold") as ws:
        from databricks.sdk import WorkspaceClient

        client = WorkspaceClient(host=ws.url, token=ws.token)
        ok = _wait(client, _submit(client, "local/jobs/hello_delta.py", ["--table", "cold.t"]))
        assert ok.state.result_state.value == "SUCCESS"
        in_flight = _submit(client, "local/jobs/sleep_job.py", ["--seconds", "120"])
        while _state(ws, in_flight)["life_cycle_state"] == "QUEUED":
            time.sleep(0.2)
        ws.process.kill()  # an abrupt stop: nothing gets to clean up
        ws.process.wait()
    with running_workspace(state, mode="cold") as ws:
        state_after = _state(ws, in_flight)
        assert state_after["life_cycle_state"] == "INTERNAL_ERROR"
        assert "restarted" in state_after["state_message"]


def test_sdk_client_starts_without_a_host_metadata_warning(ws, caplog):
    """databricks-sdk probes /.well-known/databricks-config; the workspace answers it."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.oauth import get_host_metadata

    with caplog.at_level("WARNING", logger="databricks.sdk"):
        WorkspaceClient(host=ws.url, token=ws.token)
    assert "host metadata" not in caplog.text
    assert get_host_metadata(ws.url).oidc_endpoint == ""


def test_the_setup_job_creates_every_schema_on_a_fresh_catalog(ws, client):
    """``setup_catalog.py`` through the workspace, on this module's own (fresh) warehouse: the
    schemas of the tables, of the Volumes and of a Unity Catalog style model name (``ml``)."""
    from clickstream.core.catalog import CONTRACTS, schemas

    model = "spark_catalog.ml.propensity"
    expected = schemas("spark_catalog", "/Volumes/ecom/raw", [model])
    # Locally the Volumes are folders: no "raw" schema (on Unity Catalog: tests/deploy).
    assert {s for _, s in expected} == {"bronze", "silver", "gold", "monitoring", "ml"}
    warehouse = ws.layout.warehouse_dir
    assert not any((warehouse / f"{s}.db").exists() for _, s in expected)  # fresh
    parameters = ["--catalog", "spark_catalog", "--volume-root", "/Volumes/ecom/raw"]
    for _ in range(2):  # idempotent: a second run changes nothing and succeeds
        run = _wait(
            client,
            _submit(client, "spark_jobs/setup_catalog.py", [*parameters, "--model-name", model]),
        )
        assert run.state.result_state.value == "SUCCESS", client.jobs.get_run_output(
            run.tasks[0].run_id
        ).error
    logs = client.jobs.get_run_output(run.tasks[0].run_id).logs
    assert f"5 statements, {len(CONTRACTS)} tables" in logs
    for _, schema in expected:
        assert (warehouse / f"{schema}.db").is_dir(), schema
    for contract in CONTRACTS:
        assert (warehouse / f"{contract.schema}.db" / contract.table / "_delta_log").is_dir()
