"""Start a local workspace as a subprocess for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from local.spark.runtime import PROJECT_ROOT, LocalLayout


@dataclass(frozen=True)
class RunningWorkspace:
    url: str
    host: str
    port: int
    token: str
    layout: LocalLayout
    process: subprocess.Popen


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_workspace(state_dir: Path, *, mode="warm", port=0, token=None, max_concurrent_runs=1):
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    token = token or secrets.token_hex(16)
    # The token by environment, never on the command line (readable by every user with ps).
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "DATABRICKS_TOKEN": token}
    log = open(state_dir / "workspace-server.log", "ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.workspace",
            "serve",
            "--port",
            str(port),
            "--mode",
            mode,
            "--state-dir",
            str(state_dir),
            "--max-concurrent-runs",
            str(max_concurrent_runs),
        ],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"workspace exited: {(state_dir / 'workspace-server.log').read_text()}"
            )
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        if time.monotonic() > deadline:
            stop_workspace(process)
            raise RuntimeError("workspace did not become healthy in 60 s")
        time.sleep(0.2)
    return RunningWorkspace(url, "127.0.0.1", port, token, LocalLayout(state=state_dir), process)


def stop_workspace(process: subprocess.Popen) -> None:
    """SIGTERM for a clean stop (the server stops its drivers); SIGKILL the group if stuck."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def running_workspace(state_dir: Path, **kwargs) -> Iterator[RunningWorkspace]:
    workspace = start_workspace(state_dir, **kwargs)
    try:
        yield workspace
    finally:
        stop_workspace(workspace.process)
