"""``python -m deploy.cluster_policy`` against a stand-in of the Databricks REST API (an HTTP
server on 127.0.0.1 that records the requests): the real SDK creates the policy that installs
the job libraries, or updates the one of the same name."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse

import pytest
from databricks.sdk import WorkspaceClient

from deploy import cluster_policy
from deploy.jobs_api_schema import validate_submit_payload
from ecom_airflow.config import JOB_LIBRARIES, PROD_RUNTIME_VERSION

LIBRARIES = [{"pypi": {"package": pin}} for pin in JOB_LIBRARIES]


@pytest.fixture
def api():
    """The stand-in: ``policies`` it lists, every request it got, the status it answers."""
    state: dict = {"policies": [], "seen": [], "status": 200}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, answer: dict) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = urlparse(self.path).path
            if path.startswith("/api/"):  # not the SDK's host metadata discovery
                state["seen"].append(("GET", path, None))
            self._answer(200, {"policies": state["policies"]} if path.startswith("/api/") else {})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["seen"].append(("POST", self.path, body))
            if state["status"] != 200:
                refusal = {"error_code": "PERMISSION_DENIED", "message": "only admins"}
                self._answer(state["status"], refusal)
            else:
                self._answer(200, {"policy_id": "new-policy"} if "create" in self.path else {})

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = WorkspaceClient(host=f"http://127.0.0.1:{server.server_port}", token="t")
    yield client, state
    server.shutdown()


def _expected_body() -> dict:
    return {
        "name": "ecom-prod-jobs",
        "description": "ecom-ml job clusters: runtime, cost tags and the job libraries "
        "(deploy/cluster_policy.py)",
        "libraries": LIBRARIES,
    }


def test_a_new_policy_installs_every_job_library_and_fixes_the_job_clusters(api, capsys):
    client, state = api
    assert cluster_policy.main(["--env", "prod"], client=client) == 0
    [listing, (method, path, body)] = state["seen"]
    assert listing[:2] == ("GET", "/api/2.0/policies/clusters/list")
    assert (method, path) == ("POST", "/api/2.0/policies/clusters/create")
    definition = json.loads(body.pop("definition"))
    assert body == _expected_body()
    assert definition == {
        "cluster_type": {"type": "fixed", "value": "job"},
        "spark_version": {"type": "fixed", "value": PROD_RUNTIME_VERSION},
        "custom_tags.project": {"type": "fixed", "value": "ecom-ml"},
        "custom_tags.env": {"type": "fixed", "value": "prod"},
    }
    out = capsys.readouterr().out
    assert "created cluster policy ecom-prod-jobs (5 libraries): new-policy" in out
    assert "set ECOM_CLUSTER_POLICY_ID=new-policy and ECOM_POLICY_LIBRARIES=true" in out


def test_the_policy_of_the_same_name_is_updated_in_place(api, capsys):
    client, state = api
    state["policies"] = [
        {"policy_id": "other", "name": "someone-elses"},
        {"policy_id": "ABC123", "name": "ecom-prod-jobs", "definition": "{}"},
    ]
    assert cluster_policy.main(["--env", "prod"], client=client) == 0
    method, path, body = state["seen"][-1]
    assert (method, path) == ("POST", "/api/2.0/policies/clusters/edit")
    assert body["policy_id"] == "ABC123"
    assert body["libraries"] == LIBRARIES
    assert json.loads(body["definition"])["cluster_type"] == {"type": "fixed", "value": "job"}
    assert "updated cluster policy ecom-prod-jobs (5 libraries): ABC123" in capsys.readouterr().out


def test_an_api_refusal_is_one_line_and_exit_1(api, capsys):
    client, state = api
    state["status"] = 403
    assert cluster_policy.main(["--env", "dev", "--name", "jobs"], client=client) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cluster policy jobs:") and "only admins" in err
    assert err.count("\n") == 1


def test_dry_run_sends_nothing(api, capsys):
    client, state = api
    assert cluster_policy.main(["--env", "dev", "--dry-run"], client=client) == 0
    assert state["seen"] == []
    body = json.loads(capsys.readouterr().out)
    assert body["name"] == "ecom-dev-jobs" and body["libraries"] == LIBRARIES


def test_runs_under_the_policy_are_valid_and_list_no_library(monkeypatch):
    """What the deployment then sends: the policy id on the cluster, no libraries."""
    from ecom_airflow.config import current_environment
    from ecom_airflow.tasks import job_task, submit_run_payload

    monkeypatch.setenv("ECOM_ENV", "prod")
    monkeypatch.setenv("ECOM_GIT_URL", "https://git.example.com/ecom.git")
    monkeypatch.setenv("ECOM_GIT_REF", "v1.4.0")
    monkeypatch.setenv("ECOM_CLUSTER_POLICY_ID", "new-policy")
    monkeypatch.setenv("ECOM_POLICY_LIBRARIES", "true")
    monkeypatch.delenv("ECOM_COMPUTE", raising=False)
    from datetime import timedelta

    body = submit_run_payload(
        current_environment(), "train_models.py", {}, timeout=timedelta(hours=1)
    )
    task = job_task(body)
    assert task["new_cluster"]["policy_id"] == "new-policy"
    assert "libraries" not in task
    assert validate_submit_payload(body) == []
