"""Request limits of the local workspace: body sizes, and reading only the tail of a run's log.

A JSON body over ``MAX_JSON_BODY_BYTES`` and an upload over ``--max-upload-bytes`` are a 413
``REQUEST_LIMIT_EXCEEDED``, refused from ``Content-Length`` before a byte is read, or, for a
chunked body without one, as soon as the count passes the limit; a stopped upload leaves no file
and no partial file. ``runs/get-output`` and the run page read only the tail of the log, and
get-output reads it off the event loop.

The application is built in process with its lifespan replaced (no cluster, no Spark); the
event loop test serves it with uvicorn in a thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
import uvicorn
from fastapi.testclient import TestClient

from local.spark.runtime import LocalLayout
from local.workspace.process import free_port
from tests.support.workspace_app import app_without_cluster, finished_run, no_cluster

TOKEN = "limits-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIB = 1024 * 1024
JSON_LIMIT = 10 * MIB  # local.workspace.limits.MAX_JSON_BODY_BYTES, Databricks' 10 MB
UPLOAD_LIMIT = MIB  # what these tests configure
VOLUME = "Volumes/cat/sch/vol"


def _app(tmp_path: Path, **kwargs):
    return app_without_cluster(LocalLayout(state=tmp_path / "state"), TOKEN, **kwargs)


@pytest.fixture
def app(tmp_path):
    return _app(tmp_path)  # the default limits


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _assert_limit_exceeded(response) -> None:
    assert response.status_code == 413, (response.status_code, response.text[:300])
    body = response.json()
    assert body["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert "limit" in body["message"]


def _submit_body(size: int) -> bytes:
    task = {"task_key": "main", "spark_python_task": {"python_file": "local/jobs/hello_delta.py"}}
    body = json.dumps({"run_name": "", "tasks": [task]}).encode()
    return body.replace(b'"run_name": ""', b'"run_name": "' + b"x" * (size - len(body)) + b'"')


def _runs(client) -> list:
    return client.get("/api/2.2/jobs/runs/list", headers=AUTH).json().get("runs", [])


# --- JSON bodies ----------------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_a_413_and_creates_no_run(client):
    body = _submit_body(JSON_LIMIT + 1)
    assert len(body) == JSON_LIMIT + 1
    response = client.post(
        "/api/2.2/jobs/runs/submit",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    _assert_limit_exceeded(response)
    assert _runs(client) == []


def _call(app, method: str, path: str, *, length: int | None, chunks: int, size: int, query=b""):
    """Call the ASGI app directly with a body of ``chunks`` chunks of ``size`` bytes, sent as
    the server hands them over (``Content-Length`` ``length``, or none: chunked). Returns the
    status, the JSON body and how many chunks the application read."""
    read: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        if len(read) == chunks:
            return {"type": "http.disconnect"}
        read.append(size)
        return {"type": "http.request", "body": b" " * size, "more_body": len(read) < chunks}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [
        (b"host", b"testserver"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-type", b"application/json"),
    ]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    else:
        headers.append((b"transfer-encoding", b"chunked"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body) if body else None, len(read)


def test_a_chunked_json_body_is_stopped_at_the_limit(app):
    """No Content-Length: the body is counted as it arrives and cut off past the limit."""
    status, body, read = _call(
        app, "POST", "/api/2.2/jobs/runs/cancel", length=None, chunks=40, size=MIB
    )
    assert (status, body["error_code"]) == (413, "REQUEST_LIMIT_EXCEEDED"), body
    assert read == JSON_LIMIT // MIB + 1  # not one chunk past the first over the limit


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/2.2/jobs/runs/submit"), ("PUT", f"/api/2.0/fs/files/{VOLUME}/big.bin")],
)
def test_a_declared_length_over_the_limit_is_refused_before_reading(app, method, path):
    """``Content-Length`` alone decides: not one byte of the body is read (50 GiB is over the
    JSON limit and the default upload limit)."""
    status, body, read = _call(app, method, path, length=50 * 1024**3, chunks=3, size=1024)
    assert (status, body["error_code"]) == (413, "REQUEST_LIMIT_EXCEEDED"), body
    assert read == 0


# --- uploads --------------------------------------------------------------------------------


def _volume(app) -> Path:
    volume = app.state.workspace.layout.volumes_root / "cat" / "sch" / "vol"
    volume.mkdir(parents=True, exist_ok=True)
    return volume


def test_an_upload_over_the_limit_is_a_413_and_leaves_nothing(tmp_path):
    app = _app(tmp_path, max_upload_bytes=UPLOAD_LIMIT)
    volume = _volume(app)
    url = f"/api/2.0/fs/files/{VOLUME}/big.bin"
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.put(url, content=b"x" * (UPLOAD_LIMIT + 1), headers=AUTH)
        _assert_limit_exceeded(response)
        assert list(volume.iterdir()) == []
        # exactly the limit is accepted
        assert client.put(url, content=b"x" * UPLOAD_LIMIT, headers=AUTH).status_code == 204
    assert (volume / "big.bin").stat().st_size == UPLOAD_LIMIT


def test_a_chunked_upload_over_the_limit_is_stopped_and_leaves_no_partial_file(tmp_path):
    app = _app(tmp_path, max_upload_bytes=UPLOAD_LIMIT)
    volume = _volume(app)
    (volume / "kept.bin").write_bytes(b"the old content")
    for name in ("new.bin", "kept.bin"):
        status, body, read = _call(
            app,
            "PUT",
            f"/api/2.0/fs/files/{VOLUME}/{name}",
            length=None,
            chunks=64,
            size=256 * 1024,  # 16 MiB in 256 KiB chunks
            query=b"overwrite=true",
        )
        assert (status, body["error_code"]) == (413, "REQUEST_LIMIT_EXCEEDED"), (name, body)
        assert read == UPLOAD_LIMIT // (256 * 1024) + 1, name  # stopped at the limit
    assert sorted(p.name for p in volume.iterdir()) == ["kept.bin"]  # no .uploading left
    assert (volume / "kept.bin").read_bytes() == b"the old content"


def test_the_upload_limit_is_a_serve_option(monkeypatch, tmp_path):
    import local.workspace.__main__ as cli

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    monkeypatch.setenv("ECOM_LOCAL_DIR", str(tmp_path))  # main() sets it from --state-dir
    argv = ["serve", "--token", TOKEN, "--state-dir", str(tmp_path), "--mode", "cold"]
    assert cli.main([*argv, "--max-upload-bytes", "1000"]) == 0
    [app] = apps
    app.router.lifespan_context = no_cluster
    with TestClient(app, raise_server_exceptions=False) as client:
        url = f"/api/2.0/fs/files/{VOLUME}/f.bin"
        _assert_limit_exceeded(client.put(url, content=b"x" * 1001, headers=AUTH))
        assert client.put(url, content=b"x" * 1000, headers=AUTH).status_code == 204
    with pytest.raises(SystemExit):
        cli.main([*argv, "--max-upload-bytes", "0"])


# --- the tail of a run's log ----------------------------------------------------------------


def _run_with_log(app, log: Path) -> int:
    return finished_run(app, log, "logged")


def _read_chars() -> int:
    return psutil.Process().io_counters().read_chars


def _big_log(path: Path, size: int, tail: str) -> str:
    """A sparse log of ``size`` bytes ending in ``tail``; what reading all of it gives."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        handle.seek(size)
        handle.write(tail.encode())
    return path.read_text(errors="replace")


TAIL = "line é 😀 \r\n" * 20_000  # multi-byte characters, and newlines to translate


def test_get_output_reads_only_the_tail_of_a_big_log(app, client, tmp_path):
    log = tmp_path / "big.log"
    whole = _big_log(log, 32 * MIB, TAIL)
    run_id = _run_with_log(app, log)
    before = _read_chars()
    response = client.get("/api/2.2/jobs/runs/get-output", params={"run_id": run_id}, headers=AUTH)
    read = _read_chars() - before
    assert response.status_code == 200, response.text[:300]
    output = response.json()
    assert output["logs"] == whole[-100_000:]  # what reading the whole file gave
    assert output["logs_truncated"] is True
    assert read < 2 * MIB, read  # not the 32 MiB of the whole log
    # A log of exactly the limit, and a small one, are whole and not truncated.
    for text in ("é" * 100_000, "hello\r\nworld\n"):
        log.write_text(text, newline="")
        output = client.get(
            "/api/2.2/jobs/runs/get-output", params={"run_id": run_id}, headers=AUTH
        ).json()
        assert output["logs"] == log.read_text()
        assert output["logs_truncated"] is False
    log.unlink()  # a log that is gone: no logs, no error
    output = client.get(
        "/api/2.2/jobs/runs/get-output", params={"run_id": run_id}, headers=AUTH
    ).json()
    assert "logs" not in output and output["metadata"]["run_id"] == run_id


def test_the_run_page_reads_only_the_tail_of_a_big_log(app, client, tmp_path):
    log = tmp_path / "big.log"
    _big_log(log, 32 * MIB, "the very last line\n")
    run_id = _run_with_log(app, log)
    before = _read_chars()
    page = client.get(f"/jobs/runs/{run_id}")
    read = _read_chars() - before
    assert page.status_code == 200
    assert "the very last line" in page.text
    assert read < 2 * MIB, read


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, object]]:
    """The app served by uvicorn in a thread (no lifespan: no cluster)."""
    app = _app(tmp_path)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)


def test_get_output_does_not_block_the_event_loop(served, tmp_path):
    """A log that takes long to read (a FIFO nobody writes yet) holds up its own request
    only: other requests are served meanwhile."""
    url, app = served
    fifo = tmp_path / "slow.log"
    os.mkfifo(fifo)
    run_id = _run_with_log(app, fifo)
    result: dict = {}

    def get_output() -> None:
        result["response"] = requests.get(
            f"{url}/api/2.2/jobs/runs/get-output",
            params={"run_id": run_id},
            headers=AUTH,
            timeout=60,
        )

    waiting = threading.Thread(target=get_output)
    waiting.start()
    try:
        time.sleep(0.5)  # get-output is now waiting for the log
        listed = requests.get(f"{url}/api/2.2/jobs/runs/list", headers=AUTH, timeout=5)
        assert listed.status_code == 200
        assert listed.json()["runs"][0]["run_id"] == run_id
    finally:
        writer = None
        deadline = time.monotonic() + 30
        while writer is None and time.monotonic() < deadline:
            try:  # succeeds once get-output has the FIFO open for reading
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.05)
        if writer is not None:
            os.write(writer, b"the log, at last\n")
            os.close(writer)
        waiting.join(60)
    assert result["response"].json()["logs"] == "the log, at last\n"
