"""No secret in the logs: real runs through Airflow and the local workspace, then every log.

``dag.test()`` drives one run of ``tests/support/log_masking_dag.py`` (metadata database,
execution API, dependencies), but each task runs the way a worker runs it: under Airflow's real
task supervisor (``supervise_task``, a forked task process, the structured task log file with
the secrets masker), not in process (``dag.test()``'s in-process runner writes to the console
and masks nothing). The Databricks jobs run on the local workspace, the report goes to Azurite.

Then every log is read: the Airflow task log files, the workspace's run logs, driver logs and
server log, and the run pages. The workspace token and the Blob account key never appear, the
careless task's lines show Airflow's mask in their place, and nothing in any log matches a
secret pattern (``tests/support/secret_scan.py``).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest
import requests

from tests.support.airflow import serialize
from tests.support.secret_scan import scan_for_values, scan_text

pytestmark = [pytest.mark.airflow, pytest.mark.spark]

DAG_FILE = Path(__file__).resolve().parents[1] / "support" / "log_masking_dag.py"
DAY = pendulum.datetime(2019, 10, 1, tz="UTC")


def _supervised(log_root: Path):
    """A stand-in for ``run_task_in_process`` that runs the task under the real supervisor."""
    from airflow.executors.workloads import BundleInfo
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor, supervise_task
    from airflow.settings import Session

    def run(*, ti, task):
        log_path = (
            log_root / f"dag_id={ti.dag_id}" / f"run_id={ti.run_id}" / f"task_id={ti.task_id}"
        ) / f"attempt={ti.try_number}.log"
        supervise_task(
            ti=ti,
            bundle_info=BundleInfo(name="dags-folder"),
            dag_rel_path=str(DAG_FILE),  # absolute: joined to the bundle path, it wins
            token="",
            client=InProcessTestSupervisor._api_client(task.dag),
            log_path=str(log_path),
        )
        with Session() as session:
            state = session.get(TaskInstance, ti.id).state
        return SimpleNamespace(msg=None, ti=SimpleNamespace(state=state, task=task))

    return run


@contextlib.contextmanager
def _failing_webhook():
    """An incoming-webhook endpoint that answers 500; yields its (secret) URL and the posts."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"server_error")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = f"/services/T0SEC/B0SEC/{secrets.token_hex(12)}"
        yield f"http://127.0.0.1:{server.server_port}{path}", received
    finally:
        server.shutdown()
        server.server_close()


def _text_files(folder: Path) -> dict[str, str]:
    return {
        str(path): path.read_text(errors="replace")
        for path in sorted(folder.rglob("*") if folder.is_dir() else [folder])
        if path.is_file() and path.suffix not in (".sqlite", ".db", ".parquet", ".crc")
    }


def _task_log_lines(text: str) -> list[str]:
    """The events of a structured (JSON lines) task log file."""
    events = []
    for line in text.splitlines():
        try:
            events.append(str(json.loads(line).get("event", "")))
        except json.JSONDecodeError:
            events.append(line)
    return events


@pytest.fixture(scope="module")
def logged(airflow_db, databricks_conn, azurite, workspace, put_volume_file, tmp_path_factory):
    import airflow.sdk.execution_time.supervisor as supervisor

    from tests.support import log_masking_dag

    suffix = uuid.uuid4().hex[:8]
    report = f"/Volumes/ecom/raw/reports/security_{suffix}/2019-10-01/r.html"
    put_volume_file(report, "<!DOCTYPE html><html><body>report</body></html>")
    log_root = tmp_path_factory.mktemp("task-logs")
    with pytest.MonkeyPatch.context() as patch, _failing_webhook() as (webhook, posts):
        alert = {"conn_type": "slackwebhook", "password": webhook}
        patch.setenv(f"AIRFLOW_CONN_{log_masking_dag.ALERT_CONN_ID.upper()}", json.dumps(alert))
        patch.setenv(log_masking_dag.REPORT_ENV, report)
        patch.setenv(log_masking_dag.PIPELINE_ENV, f"security_{suffix}")
        dag = log_masking_dag.dag
        patch.setattr(dag, "fileloc", str(DAG_FILE))
        for task in dag.tasks:  # the values of this session, as the task process will parse them
            if task.task_id == "publish_report":
                patch.setattr(task, "report_path", report)
                patch.setattr(task, "pipeline", f"security_{suffix}")
        serialize(dag)
        patch.setattr(supervisor, "run_task_in_process", _supervised(log_root))
        run = dag.test(logical_date=DAY)
    task_logs = _text_files(log_root)
    logs = dict(task_logs)
    logs |= _text_files(workspace.layout.workspace_dir)
    logs |= _text_files(workspace.layout.state / "workspace-server.log")
    for run_id in range(1, 1000):
        page = requests.get(f"{workspace.url}/jobs/runs/{run_id}", timeout=10)
        if "does not exist" in page.text:
            break
        logs[f"run page {run_id}"] = page.text
    return SimpleNamespace(
        run=run,
        task_logs=task_logs,
        logs=logs,
        alerts=posts,
        secrets={
            "workspace token": workspace.token,
            "Blob account key": azurite.key,
            "alert webhook URL": webhook,
            "alert webhook path": webhook.split("/services/", 1)[1],
        },
    )


def _log_of(logged, task_id: str, raw: bool = False) -> list[str]:
    (text,) = [t for path, t in logged.task_logs.items() if f"task_id={task_id}" in path]
    return text.splitlines() if raw else _task_log_lines(text)


def test_the_tasks_ran_under_the_supervisor_and_wrote_their_log_files(logged):
    states = {ti.task_id: ti.state for ti in logged.run.get_task_instances()}
    assert states == {
        "job_ok": "success",
        "job_fails": "failed",
        "publish_report": "success",
        "careless": "success",
    }
    assert len(logged.task_logs) == 4
    assert len(logged.alerts) == 1  # job_fails' failure alert, refused by the webhook
    assert any("ground truth of 20 users" in text for text in logged.logs.values())
    refusal = "build_silver_events failed: a date must be YYYY-MM-DD"
    assert refusal in "\n".join(_log_of(logged, "job_fails", raw=True))


def test_the_token_and_the_account_key_appear_in_no_log(logged):
    findings = [
        str(finding)
        for where, text in logged.logs.items()
        for finding in scan_for_values(text, where, logged.secrets)
    ]
    assert not findings, "\n".join(findings)


def test_the_careless_task_lines_show_the_mask(logged):
    lines = [line for line in _log_of(logged, "careless") if "careless " in line]
    assert len(lines) == 6, lines
    for line in lines:
        assert line.endswith(("token=***", "blob=***", "webhook=***")), line


def test_no_log_holds_anything_that_looks_like_a_secret(logged):
    findings = [str(f) for where, text in logged.logs.items() for f in scan_text(text, where)]
    assert not findings, "\n".join(findings)
