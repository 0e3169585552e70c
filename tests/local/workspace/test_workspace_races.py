"""Races and faults of the local workspace: concurrent uploads to one path, an upload cut off
mid-body, a second server started on a live server's state folder, a cancel racing the
dispatcher, a run whose set-up fails, and a dispatcher that fails or dies.

The uploads and the second server are probed over HTTP on a real server (cold mode: no driver
JVM at start). The run-queue cases drive the ``Cluster`` in process, with a stand-in for the
job process (no JVM), so the interleavings they need are forced rather than hoped for.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import requests
from fastapi.testclient import TestClient

from local.spark.runtime import PROJECT_ROOT, LocalLayout
from local.workspace.cluster import Cluster
from local.workspace.process import free_port, running_workspace
from local.workspace.server import create_app
from local.workspace.store import IN_FLIGHT, RunStore, now_ms
from tests.support.waiting import wait_for

TERMINAL = ("TERMINATED", "INTERNAL_ERROR", "SKIPPED")


@pytest.fixture(scope="module")
def ws(session_dir):
    with running_workspace(session_dir / "ws-races", mode="cold") as workspace:
        yield workspace


def _auth(ws) -> dict[str, str]:
    return {"Authorization": f"Bearer {ws.token}"}


# --- uploads ----------------------------------------------------------------------------------

SIZE = 2 * 1024 * 1024
CHUNK = 64 * 1024
UPLOADERS = 6


def _chunks(data: bytes):
    """``data`` as a chunked body sent with pauses, so the uploads are in flight together."""
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]
        time.sleep(0.002)


def _upload_at_once(ws, path: str, bodies: list[bytes], overwrite: bool) -> list[tuple]:
    """PUT each body to ``path`` from its own thread, all started together: (status, code)."""
    start = threading.Barrier(len(bodies))
    answers: list[tuple] = [()] * len(bodies)

    def put(i: int) -> None:
        start.wait()
        response = requests.put(
            f"{ws.url}/api/2.0/fs/files{path}",
            params={"overwrite": str(overwrite).lower()},
            data=_chunks(bodies[i]),
            headers=_auth(ws),
            timeout=60,
        )
        code = response.json().get("error_code") if response.content else None
        answers[i] = (response.status_code, code)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _partials(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".uploading")]


def test_concurrent_overwriting_uploads_publish_one_whole_upload(ws):
    folder = ws.layout.volumes_root / "ecom/raw/landing/races-overwrite"
    bodies = [os.urandom(SIZE) for _ in range(UPLOADERS)]
    answers = _upload_at_once(
        ws, "/Volumes/ecom/raw/landing/races-overwrite/day.csv", bodies, overwrite=True
    )
    assert answers == [(204, None)] * UPLOADERS
    assert (folder / "day.csv").read_bytes() in bodies  # one upload, whole: never a mix
    assert _partials(folder) == []


def test_concurrent_create_only_uploads_have_exactly_one_winner(ws):
    folder = ws.layout.volumes_root / "ecom/raw/landing/races-create"
    bodies = [os.urandom(SIZE) for _ in range(UPLOADERS)]
    answers = _upload_at_once(
        ws, "/Volumes/ecom/raw/landing/races-create/day.csv", bodies, overwrite=False
    )
    winners = [i for i, answer in enumerate(answers) if answer == (204, None)]
    assert len(winners) == 1, answers
    assert sorted(answers) == [(204, None)] + [(409, "ALREADY_EXISTS")] * (UPLOADERS - 1)
    assert (folder / "day.csv").read_bytes() == bodies[winners[0]]
    assert _partials(folder) == []


def test_an_upload_cut_off_mid_body_leaves_no_partial_file(ws):
    folder = ws.layout.volumes_root / "ecom/raw/landing/races-cut"
    target = "/Volumes/ecom/raw/landing/races-cut/cut.bin"
    connection = socket.create_connection((ws.host, ws.port), timeout=10)
    try:
        connection.sendall(
            (
                f"PUT /api/2.0/fs/files{target}?overwrite=true HTTP/1.1\r\n"
                f"Host: {ws.host}:{ws.port}\r\nAuthorization: Bearer {ws.token}\r\n"
                f"Content-Length: {8 * SIZE}\r\n\r\n"
            ).encode()
            + b"x" * (4 * CHUNK)
        )
        wait_for(lambda: folder.is_dir() and _partials(folder), 10, "the upload's partial file")
        listing = requests.get(
            f"{ws.url}/api/2.0/fs/directories/Volumes/ecom/raw/landing/races-cut",
            headers=_auth(ws),
            timeout=10,
        )
        assert listing.json().get("contents", []) == []  # an upload in progress is not listed
    finally:
        connection.close()  # the client goes away mid-body
    wait_for(lambda: not _partials(folder), 10, "the partial file removed")
    assert not (folder / "cut.bin").exists()


# --- one server per state folder --------------------------------------------------------------


def _submit(ws, python_file: str, parameters: list[str]) -> int:
    task = {"python_file": python_file, "parameters": parameters}
    response = requests.post(
        f"{ws.url}/api/2.2/jobs/runs/submit",
        json={"run_name": "races", "tasks": [{"task_key": "main", "spark_python_task": task}]},
        headers=_auth(ws),
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["run_id"]


def _state(ws, run_id: int) -> dict:
    response = requests.get(
        f"{ws.url}/api/2.2/jobs/runs/get", params={"run_id": run_id}, headers=_auth(ws), timeout=10
    )
    return response.json()["state"]


def _ended_over_http(ws, run_id: int) -> dict | None:
    state = _state(ws, run_id)
    return state if state["life_cycle_state"] in TERMINAL else None


@pytest.mark.spark
def test_a_second_server_on_a_live_state_folder_exits_and_touches_nothing(ws):
    run_id = _submit(ws, "local/jobs/sleep_job.py", ["--seconds", "3"])
    wait_for(lambda: _state(ws, run_id)["life_cycle_state"] == "RUNNING", 60, "the run starting")
    second = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.workspace",
            "serve",
            "--port",
            str(free_port()),
            "--mode",
            "cold",
            "--state-dir",
            str(ws.layout.state),
        ],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "DATABRICKS_TOKEN": "another"},
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = second.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(second.pid, signal.SIGKILL)
        second.communicate()
        pytest.fail("the second server is serving the live server's state folder")
    assert second.returncode != 0
    [message] = err.strip().splitlines()
    assert str(ws.layout.state) in message and f"pid {ws.process.pid}" in message, message
    assert "serving" not in out
    # Not marked lost: still running, or already ended SUCCESS (an ended run never changes,
    # so an INTERNAL_ERROR the second server had written would have stayed).
    assert _state(ws, run_id)["life_cycle_state"] in ("RUNNING", "TERMINATED")
    ended = wait_for(lambda: _ended_over_http(ws, run_id), 120, "the run ending")
    assert ended["result_state"] == "SUCCESS", ended


@pytest.mark.spark
def test_a_run_whose_set_up_fails_ends_internal_error_and_frees_its_slot(ws):
    """A file where the run's folder goes: the run cannot be set up. It ends INTERNAL_ERROR,
    naming the problem, and its slot (the only one) starts the next submission (cancelled
    once running: the in-process test below runs one to SUCCESS without a JVM)."""
    listed = requests.get(
        f"{ws.url}/api/2.2/jobs/runs/list", params={"limit": 1}, headers=_auth(ws), timeout=10
    ).json()
    next_id = max([run["run_id"] for run in listed.get("runs", [])], default=0) + 1
    blocker = ws.layout.workspace_dir / "runs" / str(next_id)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the run's folder goes")
    assert _submit(ws, "local/jobs/sleep_job.py", ["--seconds", "0"]) == next_id
    failed = wait_for(lambda: _ended_over_http(ws, next_id), 30, "the run ending")
    assert failed["life_cycle_state"] == "INTERNAL_ERROR"
    assert "could not be set up" in failed["state_message"]
    assert str(blocker) in failed["state_message"]
    following = _submit(ws, "local/jobs/sleep_job.py", ["--seconds", "60"])
    wait_for(
        lambda: _state(ws, following)["life_cycle_state"] == "RUNNING", 30, "the next run starting"
    )
    requests.post(
        f"{ws.url}/api/2.2/jobs/runs/cancel",
        json={"run_id": following},
        headers=_auth(ws),
        timeout=10,
    ).raise_for_status()
    ended = wait_for(lambda: _ended_over_http(ws, following), 30, "the next run ending")
    assert ended["result_state"] == "CANCELED", ended


# --- the run queue, in process ----------------------------------------------------------------


def _stand_in(cluster: Cluster, seconds: float):
    """In place of ``Cluster._run_cold``: the run is RUNNING for ``seconds`` (or until it is
    cancelled), then succeeds. No process, no JVM."""

    def run_cold(run_id, script, args, log_path, run_dir, verdict):
        started = cluster.store.update(
            run_id, life_cycle_state="RUNNING", state_message="", running_time=now_ms()
        )
        if started is False:  # the run ended meanwhile
            return None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if verdict() is not None:
                return None
            time.sleep(0.005)
        return {"ok": True, "error": None, "error_trace": None}

    return run_cold


@pytest.fixture
def make_cluster(tmp_path):
    """Clusters on a store in ``tmp_path``, their runs played by :func:`_stand_in`; each
    store records every change of a run's state (a trigger) in ``transitions``."""
    made: list[Cluster] = []

    def make(slots: int = 1, seconds: float = 0.0) -> Cluster:
        layout = LocalLayout(state=tmp_path)
        store = RunStore(layout.workspace_dir / "runs.sqlite")
        with sqlite3.connect(layout.workspace_dir / "runs.sqlite") as db:
            db.executescript(
                "CREATE TABLE transitions (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER,"
                " life_cycle_state TEXT, result_state TEXT);"
                "CREATE TRIGGER record AFTER UPDATE OF life_cycle_state ON runs BEGIN "
                "INSERT INTO transitions (run_id, life_cycle_state, result_state) "
                "VALUES (NEW.run_id, NEW.life_cycle_state, NEW.result_state); END;"
            )
        cluster = Cluster(store, layout, mode="cold", slots=slots)
        cluster._run_cold = _stand_in(cluster, seconds)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


def _create(store: RunStore) -> int:
    run_id, _ = store.create(
        run_name="race",
        task_key="main",
        payload={},
        python_file="local/jobs/sleep_job.py",
        parameters=[],
        token=None,
        timeout=0,
    )
    return run_id


def _ended(store: RunStore, run_id: int) -> dict | None:
    run = store.get(run_id)
    return run if run["life_cycle_state"] not in IN_FLIGHT else None


def _settled(store: RunStore, run_id: int) -> dict | None:
    """The run once it has ended and its run thread is gone: nothing can change it any more
    (a late write of the thread would show)."""
    alive = any(thread.name == f"run-{run_id}" for thread in threading.enumerate())
    return None if alive else _ended(store, run_id)


def _transitions(cluster: Cluster) -> dict[int, list[tuple[str, str | None]]]:
    with sqlite3.connect(cluster.layout.workspace_dir / "runs.sqlite") as db:
        rows = db.execute(
            "SELECT run_id, life_cycle_state, result_state FROM transitions ORDER BY seq"
        ).fetchall()
    steps: dict[int, list] = {}
    for run_id, state, result in rows:
        steps.setdefault(run_id, []).append((state, result))
    return steps


def _assert_each_run_ended_once(cluster: Cluster) -> None:
    """Every run reached exactly one terminal state, and nothing changed it afterwards."""
    for run_id, steps in _transitions(cluster).items():
        ends = [i for i, (state, _) in enumerate(steps) if state in TERMINAL]
        assert ends == [len(steps) - 1], (run_id, steps)


def test_a_run_that_has_ended_cannot_be_changed(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = _create(store)
    assert store.update(run_id, life_cycle_state="PENDING") is True
    assert (
        store.update(
            run_id, life_cycle_state="TERMINATED", result_state="CANCELED", end_time=now_ms()
        )
        is True
    )
    late = [
        {"life_cycle_state": "PENDING"},
        {"life_cycle_state": "RUNNING"},
        {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"},
        {"life_cycle_state": "INTERNAL_ERROR", "result_state": "FAILED"},
        {"log_path": "elsewhere"},
    ]
    assert [store.update(run_id, **fields) for fields in late] == [False] * len(late)
    run = store.get(run_id)
    assert (run["life_cycle_state"], run["result_state"], run["log_path"]) == (
        "TERMINATED",
        "CANCELED",
        "",
    )
    assert store.update(run_id + 1, life_cycle_state="RUNNING") is False  # no such run


def test_a_cancel_between_dequeue_and_dispatch_is_final(make_cluster):
    """A client cancels the run the dispatcher has just taken off the queue, before it marks it
    PENDING: the run ends CANCELED, and nothing runs it to SUCCESS after that."""
    cluster = make_cluster(slots=1, seconds=10)
    store = cluster.store
    run_id = _create(store)
    dequeue = store.next_queued
    cancels: list[threading.Thread] = []

    def next_queued():
        run = dequeue()
        if run is not None and not cancels:  # the dispatcher has the run in hand
            cancel = threading.Thread(target=cluster.cancel, args=(run["run_id"],))
            cancels.append(cancel)
            cancel.start()
            cancel.join(timeout=0.5)  # it may wait for the cluster's lock
        return run

    store.next_queued = next_queued
    cluster.start()
    ended = wait_for(lambda: _settled(store, run_id), 30, "the run ending")
    assert (ended["life_cycle_state"], ended["result_state"]) == ("TERMINATED", "CANCELED")
    _assert_each_run_ended_once(cluster)


def test_cancels_racing_the_dispatcher_end_every_run_exactly_once(make_cluster):
    """40 queued runs on two slots, each cancelled, in queue order, while the dispatcher starts
    them, each read of a run answered 2 ms late (a busy machine): every run ends once, and a
    run a client saw CANCELED stays CANCELED. (It catches the unlocked cancel most of the
    time; the test above catches it every time.)"""
    cluster = make_cluster(slots=2, seconds=0.02)
    store = cluster.store
    runs = [_create(store) for _ in range(40)]
    read = store.get

    def slow_read(run_id):
        run = read(run_id)
        time.sleep(0.002)
        return run

    store.get = slow_read
    cluster.start()
    seen: dict[int, tuple] = {}
    for run_id in runs:  # each cancel meets the dispatcher at the head of the queue
        cluster.cancel(run_id)
        run = store.get(run_id)
        seen[run_id] = (run["life_cycle_state"], run["result_state"])
        time.sleep(0.003)
    for run_id in runs:
        wait_for(lambda run_id=run_id: _settled(store, run_id), 30, f"run {run_id} ending")
    _assert_each_run_ended_once(cluster)
    for run_id, state in seen.items():
        if state == ("TERMINATED", "CANCELED"):
            assert store.get(run_id)["result_state"] == "CANCELED", run_id


def _block_run_folder(cluster: Cluster, run_id: int) -> str:
    blocker = cluster.layout.workspace_dir / "runs" / str(run_id)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the run's folder goes")
    return str(blocker)


def _garble_parameters(cluster: Cluster, run_id: int) -> str:
    with sqlite3.connect(cluster.layout.workspace_dir / "runs.sqlite") as db:
        db.execute("UPDATE runs SET parameters='not json' WHERE run_id=?", (run_id,))
    return "JSONDecodeError"


@pytest.mark.parametrize("fault", [_block_run_folder, _garble_parameters])
def test_a_failed_set_up_ends_the_run_and_frees_its_slot(make_cluster, fault):
    cluster = make_cluster(slots=1)
    store = cluster.store
    first = _create(store)
    named = fault(cluster, first)
    cluster.start()
    failed = wait_for(lambda: _ended(store, first), 10, "the run ending")
    assert (failed["life_cycle_state"], failed["result_state"]) == ("INTERNAL_ERROR", "FAILED")
    assert "could not be set up" in failed["state_message"] and named in failed["state_message"]
    following = _create(store)
    cluster.wake()
    ended = wait_for(lambda: _ended(store, following), 10, "the next run ending")
    assert ended["result_state"] == "SUCCESS"
    assert cluster.status()["free_slots"] == 1


def test_the_dispatcher_survives_an_error_of_its_own(make_cluster):
    cluster = make_cluster(slots=1)
    store = cluster.store
    dequeue, failures = store.next_queued, []

    def next_queued():
        if not failures:
            failures.append("database is locked")
            raise sqlite3.OperationalError("database is locked")
        return dequeue()

    store.next_queued = next_queued
    cluster.start()
    run_id = _create(store)
    cluster.wake()
    ended = wait_for(lambda: _ended(store, run_id), 10, "the run ending")
    assert ended["result_state"] == "SUCCESS" and failures
    assert cluster.status()["dispatcher"] == "alive"


def test_health_reports_a_dead_dispatcher(tmp_path):
    layout = LocalLayout(state=tmp_path)
    app = create_app(layout, token="t", mode="cold", slots=2, port=0)
    with TestClient(app) as client:
        healthy = client.get("/health")
        assert healthy.status_code == 200
        assert healthy.json() == {
            "status": "ok",
            "mode": "cold",
            "dispatcher": "alive",
            "queued": 0,
            "running": 0,
            "free_slots": 2,
        }
        cluster = app.state.workspace.cluster
        with cluster._lock:  # the dispatcher thread ends, as if it had died
            cluster._stopping = True
            cluster._lock.notify_all()
        cluster._dispatcher.join(timeout=10)
        task = {"python_file": "local/jobs/sleep_job.py", "parameters": []}
        submitted = client.post(
            "/api/2.2/jobs/runs/submit",
            json={"run_name": "stuck", "tasks": [{"task_key": "main", "spark_python_task": task}]},
            headers={"Authorization": "Bearer t"},
        )
        assert submitted.status_code == 200
        degraded = client.get("/health")
        assert degraded.status_code == 503
        assert degraded.json() == {
            "status": "degraded",
            "mode": "cold",
            "dispatcher": "dead",
            "queued": 1,
            "running": 0,
            "free_slots": 2,
        }
