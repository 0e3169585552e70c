"""The local workspace: loopback only, the token on every API call, no path out of its roots.

A real server (``python -m local.workspace serve``, cold mode: no driver JVM is started) is
probed over HTTP; the command line's guard is called in process. The traversal cases that
need symlinks in spark_jobs/ use a layout in a temporary folder (the server runs the same
function on every ``runs/submit``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from local.spark.runtime import LocalLayout
from local.workspace.__main__ import main
from local.workspace.errors import ApiError
from local.workspace.process import free_port, running_workspace, stop_workspace
from local.workspace.server import create_app
from local.workspace.validation import validate_python_file
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ws(session_dir):
    with running_workspace(session_dir / "ws-security", mode="cold") as workspace:
        yield workspace


def _auth(ws) -> dict[str, str]:
    return {"Authorization": f"Bearer {ws.token}"}


# --- listening address ----------------------------------------------------------------------


def test_it_listens_on_loopback_only_by_default(ws):
    listening = [
        c
        for c in psutil.Process(ws.process.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert (("127.0.0.1", ws.port)) in {(c.laddr.ip, c.laddr.port) for c in listening}
    assert all(ipaddress.ip_address(c.laddr.ip).is_loopback for c in listening), listening


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "no-such-host.invalid"])
def test_a_non_loopback_address_is_refused_with_a_clear_error(host, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["serve", "--host", host, "--token", "t", "--state-dir", str(tmp_path)])
    assert refused.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"refusing to listen on {host}" in error
    assert "127.0.0.1" in error and "--allow-remote" in error
    assert not (tmp_path / "workspace").exists()  # nothing was started


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Run ``main`` up to ``uvicorn.run``, recording where it would listen."""
    import uvicorn

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("ECOM_LOCAL_DIR", str(tmp_path))  # main() sets it from --state-dir
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)

    def serve(*args: str) -> dict:
        main(["serve", "--token", "t", "--state-dir", str(tmp_path), "--mode", "cold", *args])
        return calls[-1]

    return serve


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_addresses_need_no_flag(served, host):
    assert served("--host", host)["host"] == host


def test_a_remote_address_needs_the_explicit_flag(served):
    assert served()["host"] == "127.0.0.1"
    assert served("--host", "0.0.0.0", "--allow-remote")["host"] == "0.0.0.0"


@pytest.mark.parametrize("name", ["docker-compose.yaml", "docker-compose.override.yml"])
def test_the_containers_that_bind_every_interface_say_so(name):
    command = yaml.safe_load((ROOT / name).read_text())["services"]["local-workspace"]["command"]
    host = command[command.index("--host") + 1]
    assert host == "0.0.0.0" and "--allow-remote" in command  # inside the compose network


# --- the token ------------------------------------------------------------------------------


def _api_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the API, from the application itself: a new route is covered."""
    layout = LocalLayout(state=Path(os.environ["AIRFLOW_HOME"]).parent / "routes-only")
    layout.workspace_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(layout, token="t", mode="cold", slots=1, port=0)
    routes = []
    for route in app.routes:
        if route.path.startswith("/api/"):
            path = route.path.replace("{version}", "2.1").replace("{raw:path}", "Volumes/a/b/c/d")
            routes += [(method, path) for method in sorted(route.methods)]
    assert len(routes) >= 14, routes  # jobs (6) and files (8) today
    return routes


CREDENTIALS = {
    "no header": {},
    "wrong token": {"Authorization": "Bearer wrong-token"},
    "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    "empty bearer": {"Authorization": "Bearer "},
}


@pytest.mark.parametrize(("method", "path"), _api_routes())
def test_every_api_route_refuses_a_request_without_the_token(ws, method, path):
    for name, headers in CREDENTIALS.items():
        response = requests.request(
            method, ws.url + path, headers=headers, params={"token": ws.token}, timeout=10
        )
        assert response.status_code == 401, (name, response.status_code, response.text[:200])
        if method != "HEAD":
            assert response.json()["error_code"] == "UNAUTHENTICATED", name


def test_the_token_opens_the_api(ws):
    assert requests.get(f"{ws.url}/api/2.1/jobs/runs/list", headers=_auth(ws), timeout=10).ok


@pytest.mark.spark  # a warm driver starts (and is stopped while its JVM starts)
def test_a_token_given_through_the_environment_stays_out_of_the_job_processes(session_dir):
    """``DATABRICKS_TOKEN`` is read, then removed from the server's environment: the warm
    driver (and every job it runs) inherits no token to print into a run log."""
    token = "local-" + os.urandom(16).hex()
    state = session_dir / "ws-security-env"
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABRICKS_TOKEN": token}
    with open(state / "server.log", "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.workspace",
                "serve",
                "--port",
                str(port),
                "--state-dir",
                str(state),
                "--mode",
                "warm",
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _assert_children_environments_without(token, process.pid, timeout=60)
        url = f"http://127.0.0.1:{port}/api/2.1/jobs/runs/list"
        status = wait_for(lambda: _status(url, token), 60, "the server answering", interval=0.2)
        assert status == 200  # the token was taken from the environment
    finally:
        stop_workspace(process)


def _status(url: str, token: str) -> int | None:
    """The status code of a GET of ``url``, or None while nothing listens."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        return requests.get(url, headers=headers, timeout=5).status_code
    except requests.ConnectionError:
        return None


def _assert_children_environments_without(token: str, server_pid: int, timeout: float) -> None:
    """Reads the environment of every process the server started, until the warm driver and
    its JVM are both among them, asserting the token is in none. (The server's own /proc
    environ keeps its start-up copy; what counts is what the processes it starts inherit.)

    The JVM forks short-lived helpers (Hadoop's ``readlink``/``chmod``): one that exits
    between the listing and the read is skipped, it inherited the JVM's environment. A child
    caught between ``fork`` and ``exec`` still shows its parent's command line and start-up
    environ block (the kernel's copy, which ``os.environ.pop`` does not rewrite): it is read
    again on the next pass, once it has become the program it starts."""
    checked: dict[int, str] = {}
    server = psutil.Process(server_pid)
    server_cmdline = server.cmdline()

    def driver_and_jvm_read() -> bool:
        for child in server.children(recursive=True):
            try:  # a zombie raises ZombieProcess, a NoSuchProcess
                if child.cmdline() == server_cmdline:
                    continue  # forked, not yet exec-ed
                environ, cmdline = child.environ(), " ".join(child.cmdline())
            except psutil.NoSuchProcess:
                continue
            assert token not in "\n".join(environ.values()), cmdline[:200]
            checked[child.pid] = cmdline
        lines = checked.values()
        return any("local.workspace.driver" in line for line in lines) and any(
            line.split(" ", 1)[0].endswith("java") for line in lines
        )

    wait_for(driver_and_jvm_read, timeout, "the warm driver and its JVM starting", interval=0.2)


# --- paths ----------------------------------------------------------------------------------

TRAVERSALS = [
    "../../etc/passwd",
    "../etc/passwd.py",
    "/etc/passwd",
    "/etc/passwd.py",
    "spark_jobs/../../etc/passwd.py",
    "spark_jobs/../local/workspace/driver.py",
    "local/jobs/../../local/stack/services.py",
    "spark_jobs\\..\\tools\\stack.py",
    "~/.ssh/id_rsa.py",
    "local/workspace/driver.py",
    "spark_jobs/a\x00.py",
    "spark_jobs/" + "a" * 300 + ".py",
    "spark_jobs/examples",
]


@pytest.mark.parametrize("python_file", TRAVERSALS)
def test_python_file_outside_the_job_folders_is_refused(ws, python_file):
    listed = requests.get(f"{ws.url}/api/2.1/jobs/runs/list", headers=_auth(ws), timeout=10)
    body = {
        "run_name": "traversal",
        "tasks": [{"task_key": "t", "spark_python_task": {"python_file": python_file}}],
    }
    response = requests.post(
        f"{ws.url}/api/2.1/jobs/runs/submit", json=body, headers=_auth(ws), timeout=10
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    after = requests.get(f"{ws.url}/api/2.1/jobs/runs/list", headers=_auth(ws), timeout=10)
    assert after.json() == listed.json()  # no run was created


@pytest.fixture
def linked_layout(tmp_path) -> LocalLayout:
    """A project root whose spark_jobs/ holds symlinks out of it (and one that stays in)."""
    root = tmp_path / "project"
    jobs = root / "spark_jobs"
    (jobs / "examples").mkdir(parents=True)
    (jobs / "examples" / "job.py").write_text("print('ok')\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text("print('escaped')\n")
    (root / "tools").mkdir()
    (root / "tools" / "stack.py").write_text("")
    (jobs / "escape.py").symlink_to(outside / "evil.py")
    (jobs / "escape_dir").symlink_to(outside, target_is_directory=True)
    (jobs / "up.py").symlink_to(root / "tools" / "stack.py")
    (jobs / "alias.py").symlink_to(jobs / "examples" / "job.py")
    return LocalLayout(root=root, state=tmp_path / "state")


@pytest.mark.parametrize(
    "python_file", ["spark_jobs/escape.py", "spark_jobs/escape_dir/evil.py", "spark_jobs/up.py"]
)
def test_a_symlink_out_of_spark_jobs_is_refused(linked_layout, python_file):
    with pytest.raises(ApiError) as refused:
        validate_python_file(linked_layout, python_file)
    assert refused.value.status == 400
    assert refused.value.message == (
        f"python_file {python_file!r} is outside the job folders spark_jobs/ or local/jobs/"
    )


def test_a_symlink_inside_spark_jobs_is_accepted(linked_layout):
    assert validate_python_file(linked_layout, "spark_jobs/alias.py") == "spark_jobs/alias.py"


@pytest.mark.parametrize("python_file", ["spark_jobs/ingest_events.py", "local/jobs/fail_job.py"])
def test_scripts_of_both_job_folders_are_accepted(python_file):
    assert validate_python_file(LocalLayout(), python_file) == python_file


@pytest.fixture(scope="module")
def volume_escape(ws, tmp_path_factory):
    """A symlink inside the Volumes root that points at a folder outside it."""
    outside = tmp_path_factory.mktemp("outside-volumes")
    (outside / "secret.txt").write_text("not for the workspace")
    link = ws.layout.volumes_root / "ecom" / "raw" / "landing" / "escape"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    return outside


@pytest.mark.parametrize(
    ("method", "api", "path"),
    [
        ("GET", "files", "escape/secret.txt"),
        ("HEAD", "files", "escape/secret.txt"),
        ("PUT", "files", "escape/planted.txt"),
        ("DELETE", "files", "escape/secret.txt"),
        ("GET", "directories", "escape"),
        ("PUT", "directories", "escape/new"),
    ],
)
def test_a_symlink_out_of_the_volumes_root_is_refused(ws, volume_escape, method, api, path):
    url = f"{ws.url}/api/2.0/fs/{api}/Volumes/ecom/raw/landing/{path}"
    response = requests.request(method, url, headers=_auth(ws), data=b"planted", timeout=10)
    assert response.status_code == 403, (response.status_code, response.text)
    if method != "HEAD":
        assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert sorted(p.name for p in volume_escape.iterdir()) == ["secret.txt"]
    assert (volume_escape / "secret.txt").read_text() == "not for the workspace"


@pytest.mark.parametrize(
    "path",
    [
        "Volumes/ecom/raw/a%00b.txt",
        "Volumes/ecom/raw/landing/" + "b" * 300,  # the parent exists
        "Volumes/nowhere/" + "b" * 300 + "/c.txt",  # it does not
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_malformed_volumes_path_is_a_client_error(ws, volume_escape, method, path):
    url = f"{ws.url}/api/2.0/fs/files/{path}"
    response = requests.request(method, url, headers=_auth(ws), data=b"x", timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("endpoint", ["runs/get", "runs/get-output", "runs/cancel"])
def test_run_ids_are_integers_never_paths(ws, endpoint):
    method = "POST" if endpoint == "runs/cancel" else "GET"
    response = requests.request(
        method,
        f"{ws.url}/api/2.1/jobs/{endpoint}",
        headers=_auth(ws),
        params={"run_id": "../../etc/passwd"},
        timeout=10,
    )
    assert response.status_code == 400
    assert re.search(r"run_id must be an integer", response.json()["message"])


def test_no_launcher_puts_the_token_on_a_command_line(ws, tmp_path):
    """Every local user can read a process's command line (``ps``): the workspace token goes
    by environment, from the tests' launcher and from ``make up``'s service definition."""
    cmdline = Path(f"/proc/{ws.process.pid}/cmdline").read_bytes().decode().split("\0")
    assert ws.token not in " ".join(cmdline)
    assert "--token" not in cmdline
    from local.stack.config import StackConfig
    from local.stack.services import services

    token = "local-" + "ab" * 16
    secrets = {"workspace_token": token, "airflow_password": "p" * 16}
    config = StackConfig(tmp_path, 1, 2, 3, 4, secrets=secrets)
    for service in services(config):
        assert token not in " ".join(service.command), service.name
    [workspace] = [s for s in services(config) if s.name == "workspace"]
    assert workspace.env["DATABRICKS_TOKEN"] == token


def test_stack_secrets_are_private_from_creation_and_not_printed(tmp_path, monkeypatch):
    """``secrets.json`` and ``stack.env`` are created 0600 (even under a permissive umask, and
    an existing world-readable file is closed before it is rewritten); ``make up`` prints where
    the Airflow password is, and the password itself only when asked."""
    from local.stack.config import StackConfig, write_private, write_stack_env
    from local.stack.services import summary

    old = os.umask(0)
    try:
        monkeypatch.setenv("ECOM_LOCAL_DIR", str(tmp_path))
        config = StackConfig.from_env()
        env_path = write_stack_env(config)
        loose = tmp_path / "loose.json"
        loose.write_text("{}")
        loose.chmod(0o644)
        write_private(loose, '{"a": 1}')
    finally:
        os.umask(old)
    for path in (tmp_path / "secrets.json", env_path, loose):
        assert path.stat().st_mode & 0o777 == 0o600, path
    link = tmp_path / "link"
    link.symlink_to(loose)
    with pytest.raises(OSError):
        write_private(link, "x")  # never follows a planted symlink
    password = config.secrets["airflow_password"]
    assert password not in summary(config, env_path)
    assert "make up ARGS=--show-passwords" in summary(config, env_path)
    assert password in summary(config, env_path, show_passwords=True)


def test_the_make_run_summary_names_where_the_password_is_not_the_password(
    tmp_path, monkeypatch, capsys
):
    from local.stack.config import StackConfig
    from local.story.summary import print_summary

    monkeypatch.setenv("ECOM_LOCAL_DIR", str(tmp_path))
    config = StackConfig.from_env()
    print_summary({}, {"tables": []}, config, 60.0)
    printed = capsys.readouterr().out
    assert config.secrets["airflow_password"] not in printed
    assert f"AIRFLOW_PASSWORD in {tmp_path / 'stack.env'}" in printed
