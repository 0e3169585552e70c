"""A local incoming-webhook endpoint standing in for the chat service of the alerts, and the
``ecom_alerts`` connection pointing at it."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ecom_airflow.alerts import ALERT_CONN_ID
from tests.support.env import environment

CONN_ENV = f"AIRFLOW_CONN_{ALERT_CONN_ID.upper()}"


@contextmanager
def webhook(status: int = 200):
    """Records each POSTed JSON body and answers ``status``; yields its URL and the bodies."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"server_error")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/services/T000/B000/alerts", received
    finally:
        server.shutdown()
        server.server_close()


def alert_connection(url: str | None):
    """``with alert_connection(url):`` the alert webhook at ``url`` for this process (None: no
    connection), as an ``AIRFLOW_CONN_*`` variable."""
    value = json.dumps({"conn_type": "slackwebhook", "password": url}) if url else None
    return environment(**{CONN_ENV: value})
