"""``python -m deploy.online_store`` against a stand-in of the Databricks REST API (an HTTP
server on 127.0.0.1 that records the request): the real SDK sends the synced table's body."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from databricks.sdk import WorkspaceClient

from deploy import online_store

ARGS = ["--env", "prod", "--database-instance", "ecom-online", "--logical-database", "ecom"]


@pytest.fixture
def api():
    seen: list[tuple[str, dict]] = []
    reply: dict = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            if reply["status"] == 200:
                answer = {**body, "data_synchronization_status": {"pipeline_id": "pipe-123"}}
            else:
                answer = {"error_code": "ALREADY_EXISTS", "message": "synced table exists"}
            data = json.dumps(answer).encode()
            self.send_response(reply["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = WorkspaceClient(host=f"http://127.0.0.1:{server.server_port}", token="t")
    yield client, seen, reply
    server.shutdown()


def test_the_synced_table_is_keyed_triggered_and_names_its_pipeline(api, capsys):
    client, seen, _ = api
    assert online_store.main(ARGS, client=client) == 0
    [(path, body)] = seen
    assert path == "/api/2.0/database/synced_tables"
    assert body == {
        "name": "ecom_prod.gold.user_features_online_synced",
        "database_instance_name": "ecom-online",
        "logical_database_name": "ecom",
        "spec": {
            "source_table_full_name": "ecom_prod.gold.user_features_online",
            "primary_key_columns": ["user_id"],
            "scheduling_policy": "TRIGGERED",
            "create_database_objects_if_missing": True,
        },
    }
    assert "set ECOM_ONLINE_SYNC_PIPELINE_ID=pipe-123" in capsys.readouterr().out


def test_an_api_refusal_is_one_line_and_exit_1(api, capsys):
    client, _, reply = api
    reply["status"] = 409
    assert online_store.main(ARGS, client=client) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: creating ecom_prod.gold.user_features_online_synced:")
    assert "synced table exists" in err and err.count("\n") == 1


def test_dry_run_sends_nothing(api, capsys):
    client, seen, _ = api
    assert online_store.main([*ARGS, "--dry-run"], client=client) == 0
    assert seen == []
    assert json.loads(capsys.readouterr().out)["spec"]["primary_key_columns"] == ["user_id"]
