"""Start and stop the local stack: workspace server, MLflow, Azurite and Airflow (SQLite).

``python -m local.stack up|down|status`` (``make up`` / ``make down`` / ``make status``).

Every service runs in its own process group, tracked by a pid file in ``<state>/pids`` and
logging to ``<state>/logs/<service>.log``; ``down`` stops exactly those process groups. ``up``
reuses services that are already running and healthy, so it is safe to call repeatedly.
The URLs and credentials are printed and written to ``<state>/stack.env`` (sourceable), under
the variable names the official clients read; where the stack lives and its ports are in
:mod:`local.stack.config`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ecom_airflow.config import LOCAL
from local.stack.config import (
    AIRFLOW_USER,
    AZURITE_ACCOUNT,
    ROOT,
    StackConfig,
    write_private,
    write_stack_env,
)

VENV_BIN = Path(sys.executable).parent
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SETTLE_SECONDS = 3.0


def log(message: str) -> None:
    print(f"[stack] {message}", flush=True)


@dataclass
class Service:
    name: str
    command: list[str]
    env: dict[str, str]
    ready_url: str | None = None
    ready_port: int | None = None  # neither: ready once it has stayed up a few seconds
    timeout: float = 120.0
    stop_signal: int = signal.SIGTERM


def _base_env(config: StackConfig) -> dict[str, str]:
    # The stack configures Airflow completely; settings from the caller's shell (another
    # AIRFLOW_HOME, a test database) must not leak into it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ECOM_LOCAL_DIR"] = str(config.state)
    env["ECOM_ENV"] = "local"
    env["MLFLOW_TRACKING_URI"] = config.mlflow_url
    return env


LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


def _dag_bundles(config: StackConfig) -> dict[str, str]:
    """The project's DAGs folder (Airflow's default bundle, ``dags-folder``), plus the tests'
    DAGs as a bundle of their own when the stack has them (``StackConfig.test_dags``)."""
    if config.test_dags is None:
        return {}
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "test-dags", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(config.test_dags)}},
    ]
    return {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles)}


def _airflow_env(config: StackConfig, base: dict[str, str]) -> dict[str, str]:
    airflow_home = config.state / "airflow"
    return {
        **_dag_bundles(config),
        **base,
        **config.airflow_connections(),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "8",
        # Notice a new DAG file within 30 s (the default is 5 minutes).
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # A task whose worker died (no heartbeat for 60 s; the default is 300) goes up for
        # retry within about a minute, which the e2e worker-kill test waits for. Live tasks
        # heartbeat every 5 s ([workers] min_heartbeat_interval) and kill themselves after 3
        # failed heartbeats, so 60 s never fails a healthy one.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{config.airflow_url}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(config.airflow_port),
        "AIRFLOW__API__BASE_URL": config.airflow_url,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(config.logs / "airflow"),
        # Log-server ports follow the API port (8793/8794 for 8080) so two stacks can coexist.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(config.airflow_port + 713),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(config.airflow_port + 714),
        # Clearing a task reruns its Databricks job; retries still reattach to a live run.
        "AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS": "True",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")]),
    }


def _workspace(config: StackConfig, base: dict[str, str]) -> Service:
    return Service(
        name="workspace",
        command=[
            str(VENV_BIN / "python"),
            "-m",
            "local.workspace",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(config.workspace_port),
            "--mode",
            config.workspace_mode,
            "--state-dir",
            str(config.state),
        ],
        # By environment, never on the command line (every local user can read that with
        # ps); the server drops it before it starts any job.
        env={
            **base,
            "PYTHONPATH": str(ROOT),
            "DATABRICKS_TOKEN": config.secrets["workspace_token"],
        },
        ready_url=f"{config.workspace_url}/health",
    )


def _mlflow(config: StackConfig, base: dict[str, str]) -> Service:
    mlflow_dir = config.state / "mlflow"
    return Service(
        name="mlflow",
        command=[
            str(VENV_BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            "--artifacts-destination",
            str(mlflow_dir / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(config.mlflow_port),
            "--workers",
            "1",
        ],
        env=base,
        ready_url=f"{config.mlflow_url}/health",
    )


def _azurite(config: StackConfig, base: dict[str, str]) -> Service:
    return Service(
        name="azurite",
        command=[
            str(ROOT / ".local" / "node" / "node_modules" / ".bin" / "azurite-blob"),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(config.azurite_port),
            "--location",
            str(config.state / "azurite"),
            "--skipApiVersionCheck",
            "--silent",
        ],
        env=base,
        ready_port=config.azurite_port,
        stop_signal=signal.SIGINT,  # Azurite shuts down cleanly on SIGINT only
    )


def _airflow(config: StackConfig, base: dict[str, str]) -> list[Service]:
    """Airflow's components, as `airflow standalone` runs them but each under a supervisor that
    restarts it if it dies (local/stack/supervise.py says why)."""
    env = _airflow_env(config, base)
    return [
        Service(
            name=f"airflow-{component}",
            command=[
                str(VENV_BIN / "python"),
                "-m",
                "local.stack.supervise",
                "--",
                str(VENV_BIN / "airflow"),
                component,
            ],
            env=env,
            ready_url=f"{config.airflow_url}/api/v2/monitor/health"
            if component == "api-server"
            else None,
            timeout=300.0,
        )
        for component in AIRFLOW_COMPONENTS
    ]


def services(config: StackConfig) -> list[Service]:
    """The stack's services, in start order."""
    base = _base_env(config)
    return [
        _workspace(config, base),
        _mlflow(config, base),
        _azurite(config, base),
        *_airflow(config, base),
    ]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(config: StackConfig, name: str) -> int | None:
    path = config.pids / f"{name}.pid"
    if not path.exists():
        return None
    pid = int(path.read_text().split()[0])
    return pid if _pid_alive(pid) else None


def _is_ready(service: Service) -> bool:
    if service.ready_url is None and service.ready_port is None:
        return True  # no probe: being alive is all there is to check
    if service.ready_url:
        try:
            with urllib.request.urlopen(service.ready_url, timeout=3) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", service.ready_port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _prepare(config: StackConfig) -> None:
    for folder in (config.logs, config.pids, config.state / "mlflow", config.state / "azurite"):
        folder.mkdir(parents=True, exist_ok=True)
    airflow_home = config.state / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    passwords = airflow_home / "passwords.json"
    write_private(passwords, json.dumps({AIRFLOW_USER: config.secrets["airflow_password"]}))


def start(config: StackConfig, service: Service) -> None:
    pid = _read_pid(config, service.name)
    if pid and _is_ready(service):
        log(f"{service.name}: already running (pid {pid})")
        return
    if pid:
        _stop_pid(pid, service.name, service.stop_signal)
    log_path = config.logs / f"{service.name}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            service.command,
            env=service.env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (config.pids / f"{service.name}.pid").write_text(f"{process.pid}\n")
    log(f"{service.name}: starting (pid {process.pid}, log {log_path})")
    deadline = time.monotonic() + service.timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with code {process.returncode} during start-up; "
                f"last lines of {log_path}:\n{_tail(log_path)}"
            )
        if _is_ready(service):
            if service.ready_url is None and service.ready_port is None:
                # Without a probe, survive a few seconds to catch a failed start.
                time.sleep(SETTLE_SECONDS)
                if process.poll() is not None:
                    continue
            log(f"{service.name}: ready")
            return
        time.sleep(1)
    raise RuntimeError(
        f"{service.name} not ready after {service.timeout:.0f}s; last lines of {log_path}:\n"
        f"{_tail(log_path)}"
    )


def _stop_pid(pid: int, name: str, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.3)
    log(f"{name}: still running after {grace:.0f}s, killing")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: an exited process
    that its parent has not reaped yet (the group leader is a ``Popen`` child of the process
    that ran ``up``, which does not wait for it) would make every stop wait its whole grace."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():  # no procfs (macOS): signal 0 probes the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # the process ended while being read
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _migrate_airflow_db(config: StackConfig, env: dict[str, str]) -> None:
    """Create or upgrade Airflow's metadata database (idempotent; standalone did this too)."""
    log("airflow: migrating the metadata database")
    with open(config.logs / "airflow-db-migrate.log", "ab") as log_file:
        result = subprocess.run(
            [str(VENV_BIN / "airflow"), "db", "migrate"],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    if result.returncode != 0:
        raise RuntimeError(
            "airflow db migrate failed; last lines of "
            f"{config.logs / 'airflow-db-migrate.log'}:\n"
            f"{_tail(config.logs / 'airflow-db-migrate.log')}"
        )


def _create_pool(config: StackConfig, env: dict[str, str]) -> None:
    """The pool every Databricks job task runs in (idempotent: ``pools set`` upserts)."""
    pool, slots = LOCAL.databricks_pool, LOCAL.databricks_pool_slots
    log(f"airflow: pool {pool} with {slots} slots")
    result = subprocess.run(
        [
            str(VENV_BIN / "airflow"),
            "pools",
            "set",
            pool,
            str(slots),
            "Databricks runs in flight (one slot per job task)",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow pools set {pool} failed:\n{result.stderr[-2000:]}")


def summary(config: StackConfig, env_path: Path, *, show_passwords: bool = False) -> str:
    """What ``up`` prints: the URLs, and where the credentials are (the Airflow password
    itself only with ``show_passwords``: a terminal's output is often shared or logged)."""
    env = config.client_env()
    password = (
        f"password {env['AIRFLOW_PASSWORD']}"
        if show_passwords
        else "password: AIRFLOW_PASSWORD in stack.env, or make up ARGS=--show-passwords"
    )
    return (
        "\nLocal stack is up:\n"
        f"  Airflow UI         {env['AIRFLOW_API_URL']}  "
        f"(user {env['AIRFLOW_USERNAME']}, {password})\n"
        f"  Databricks (local) {env['DATABRICKS_HOST']}/jobs/runs  (API token in stack.env)\n"
        f"  MLflow             {env['MLFLOW_TRACKING_URI']}\n"
        f"  Azurite blob       http://127.0.0.1:{config.azurite_port}/{AZURITE_ACCOUNT}\n"
        f"  Logs               {config.logs}\n"
        f"  Client settings    source {env_path}\n"
    )


def up(config: StackConfig, *, show_passwords: bool = False) -> None:
    _prepare(config)
    all_services = services(config)
    airflow = [s for s in all_services if s.name.startswith("airflow-")]
    if not all(_read_pid(config, s.name) for s in airflow):
        _migrate_airflow_db(config, airflow[0].env)
        _create_pool(config, airflow[0].env)
    for service in all_services:
        start(config, service)
    env_path = write_stack_env(config)
    print(summary(config, env_path, show_passwords=show_passwords), flush=True)


def down(config: StackConfig) -> None:
    # Stop in reverse start order: Airflow first, so nothing submits to a stopping workspace.
    for service in reversed(services(config)):
        pid_file = config.pids / f"{service.name}.pid"
        pid = _read_pid(config, service.name)
        if pid:
            log(f"{service.name}: stopping (pid {pid})")
            _stop_pid(pid, service.name, service.stop_signal)
        pid_file.unlink(missing_ok=True)
    log("stopped")


def status(config: StackConfig) -> int:
    all_ready = True
    for service in services(config):
        pid = _read_pid(config, service.name)
        ready = bool(pid) and _is_ready(service)
        all_ready &= ready
        state = "ready" if ready else ("starting/unhealthy" if pid else "stopped")
        print(f"{service.name:10s} {state:20s} pid={pid or '-'}")
    return 0 if all_ready else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--show-passwords", action="store_true", help="up: print the Airflow UI password"
    )
    args = parser.parse_args(argv)
    config = StackConfig.from_env()
    try:
        if args.command == "up":
            up(config, show_passwords=args.show_passwords)
        elif args.command == "down":
            down(config)
        else:
            return status(config)
    except RuntimeError as error:
        print(f"[stack] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
