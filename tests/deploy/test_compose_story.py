"""``docker compose run --rm story``: docker/story.py tells make run's story (``local.story``)
on the container stack. Checked here without containers: the stack it describes is the one the
compose file runs, it waits for that stack instead of starting one, and the two names of
``local.story`` it replaces still exist."""

from __future__ import annotations

import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

import local.story.cli
import local.story.story
from local.stack.config import AIRFLOW_USER, StackConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def story():
    spec = importlib.util.spec_from_file_location("compose_story", ROOT / "docker/story.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]


@pytest.fixture
def story_env(monkeypatch, tmp_path, services):
    env = services["story"]["environment"]
    monkeypatch.setenv("ECOM_AIRFLOW_URL", env["ECOM_AIRFLOW_URL"])
    monkeypatch.setenv("DATABRICKS_TOKEN", "token-of-env")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "password-of-env")
    monkeypatch.setenv("ECOM_LOCAL_DIR", str(tmp_path))
    for name in ("ECOM_WORKSPACE_PORT", "ECOM_MLFLOW_PORT", "ECOM_AIRFLOW_PORT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _flag(command: list[str], name: str) -> str:
    words = " ".join(command).split()
    return words[words.index(name) + 1]


def test_the_story_sees_the_stack_the_compose_file_runs(story, story_env, services):
    config = story.ComposeStack.from_env()
    # It shares the workspace container's network: the workspace and MLflow on loopback, at
    # the ports their commands listen on; Airflow at the api-server's service name and port.
    assert services["story"]["network_mode"] == "service:local-workspace"
    assert services["mlflow"]["network_mode"] == "service:local-workspace"
    workspace_port = _flag(services["local-workspace"]["command"], "--port")
    mlflow_port = _flag(services["mlflow"]["command"], "--port")
    assert config.workspace_url == f"http://127.0.0.1:{workspace_port}"
    assert config.mlflow_url == f"http://127.0.0.1:{mlflow_port}"
    assert config.airflow_url == "http://api-server:8080"
    assert "api-server" in services and services["api-server"]["ports"] == ["127.0.0.1:8080:8080"]
    # Its credentials are the environment's (the same .env values as the services'), its state
    # the workspace's volume; nothing is written for secrets.
    env = config.client_env()
    assert (env["DATABRICKS_TOKEN"], env["AIRFLOW_PASSWORD"]) == ("token-of-env", "password-of-env")
    assert env["AIRFLOW_USERNAME"] == AIRFLOW_USER
    assert (
        f"{AIRFLOW_USER}:"
        in services["api-server"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    )
    assert config.state == story_env and not (story_env / "secrets.json").exists()
    compose_env = services["story"]["environment"]
    assert (
        compose_env["DATABRICKS_TOKEN"]
        == services["local-workspace"]["environment"]["DATABRICKS_TOKEN"]
    )
    assert (
        compose_env["AIRFLOW_PASSWORD"]
        == services["api-server"]["environment"]["AIRFLOW_ADMIN_PASSWORD"]
    )
    assert services["story"]["volumes"] == [
        v for v in services["local-workspace"]["volumes"] if v.endswith(":/data")
    ]


def test_the_story_runs_docker_story_py_with_the_project_on_its_path(services):
    story = services["story"]
    assert story["entrypoint"] == ["python", "/opt/ecom/docker/story.py"]
    assert story["environment"]["PYTHONPATH"].split(":") == ["/opt/ecom", "/opt/ecom/include"]
    assert story["profiles"] == ["story"]


def test_the_names_it_replaces_are_still_those_local_story_uses():
    """docker/story.py swaps ``local.story.cli.StackConfig`` and ``local.story.story.up``: if
    ``local.story`` stops using them, the story would start a process stack in the container."""
    assert local.story.cli.StackConfig is StackConfig
    assert "StackConfig" in local.story.cli.main.__code__.co_names
    for stage in (local.story.story.tell, local.story.story.recall):
        assert "up" in stage.__code__.co_names, stage.__name__


def test_its_command_line_is_make_runs(story, monkeypatch, capsys):
    monkeypatch.setattr(local.story.cli, "StackConfig", local.story.cli.StackConfig)
    monkeypatch.setattr(local.story.story, "up", local.story.story.up)
    with pytest.raises(SystemExit) as done:
        story.main(["--help"])
    assert done.value.code == 0
    assert "--events-per-day" in capsys.readouterr().out
    assert local.story.cli.StackConfig is story.ComposeStack
    assert local.story.story.up is story.wait_for_stack


class _Health(BaseHTTPRequestHandler):
    healthy: set[str] = set()
    seen: list[str] = []

    def do_GET(self):
        self.seen.append(self.path)
        self.send_response(200 if self.path in self.healthy else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_it_waits_for_every_service_to_be_healthy(story, story_env, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.setenv("ECOM_WORKSPACE_PORT", str(port))
    monkeypatch.setenv("ECOM_MLFLOW_PORT", str(port))
    monkeypatch.setenv("ECOM_AIRFLOW_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(story.time, "sleep", lambda _: None)
    config = story.ComposeStack.from_env()
    try:
        _Health.healthy = {"/health", "/api/v2/monitor/health"}
        story.wait_for_stack(config, timeout=5)
        assert set(_Health.seen) == {"/health", "/api/v2/monitor/health"}
        _Health.healthy = {"/health"}
        with pytest.raises(RuntimeError, match="airflow not healthy"):
            story.wait_for_stack(config, timeout=0.5)
    finally:
        server.shutdown()
        server.server_close()
