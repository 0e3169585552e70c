"""Static checks of the container files (no Docker engine runs here): they must agree with
the local stack on versions, services, ports and connections. The real Compose parser checks
them in test_compose_config.py, a real Dockerfile parser in test_dockerfiles.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from airflow.models.connection import Connection

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ["docker-compose.yaml", "docker-compose.override.yml"]
# The project's services and the ports they publish on the host (MLflow shares the network of
# the workspace container, which publishes its port).
STACK_PORTS = {"local-workspace": ["8765", "5000"], "azurite": ["10000"]}
# The services that run the project's own image build it themselves.
BUILT_SERVICES = ["local-workspace", "mlflow", "secrets-check"]
AIRFLOW_SERVICES = ["scheduler", "dag-processor", "api-server", "triggerer"]


def locked(package: str) -> str:
    """The version of ``package`` in the lock file (constraints.txt)."""
    match = re.search(
        rf"^{re.escape(package)}==(\S+)", (ROOT / "constraints.txt").read_text(), re.M
    )
    assert match, f"{package} not pinned in constraints.txt"
    return match.group(1)


def _compose(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_files_have_the_stack_services_and_ports(name):
    services = _compose(name)["services"]
    for service, ports in STACK_PORTS.items():
        assert services[service]["ports"] == [f"127.0.0.1:{p}:{p}" for p in ports], service
    for service in BUILT_SERVICES:
        assert services[service]["build"]["dockerfile"] == "docker/workspace.Dockerfile", service
        assert services[service]["image"] == "ecom-local-workspace:0.1.0", service
    # The Airflow services have the Astro CLI's names in both files: the override adds to them.
    assert set(AIRFLOW_SERVICES) <= set(services)
    for service, spec in services.items():
        for target in spec.get("depends_on", {}):
            assert target in services, (service, target)


@pytest.mark.parametrize(
    "path",
    ["Dockerfile", "docker/workspace.Dockerfile", "docker/airflow.Dockerfile", *COMPOSE_FILES],
)
def test_every_image_is_pinned(path):
    text = (ROOT / path).read_text()
    images = re.findall(r"^FROM\s+(\S+)", text, re.M) + re.findall(
        r"^\s*image:\s*(\S+)", text, re.M
    )
    assert images
    for image in images:
        assert ":" in image and not image.endswith(":latest"), image


def test_versions_match_the_requirements():
    airflow = locked("apache-airflow")
    assert (
        f"apache/airflow:{airflow}-python3.11" in (ROOT / "docker/airflow.Dockerfile").read_text()
    )
    assert _compose("docker-compose.yaml")["x-airflow-common"]["image"].endswith(f":{airflow}")
    # Astro Runtime 3.3-x ships Airflow 3.3.x.
    major_minor = ".".join(airflow.split(".")[:2])
    assert re.search(rf"runtime:{re.escape(major_minor)}-\d+", (ROOT / "Dockerfile").read_text())
    azurite = json.loads((ROOT / "setup/node/package.json").read_text())["dependencies"]["azurite"]
    for name in COMPOSE_FILES:
        assert _compose(name)["services"]["azurite"]["image"].endswith(f":{azurite}")
    # Local Spark in the workspace image needs the JDK the local stack uses.
    assert "openjdk-17-jre-headless" in (ROOT / "docker/workspace.Dockerfile").read_text()


def _connections(env: dict) -> dict[str, Connection]:
    return {
        key.removeprefix("AIRFLOW_CONN_").lower(): Connection.from_json(
            re.sub(r"\$\{[^}]*\}", "t", value), conn_id=key
        )
        for key, value in env.items()
        if key.startswith("AIRFLOW_CONN_")
    }


def test_connections_agree_across_files():
    compose = _compose("docker-compose.yaml")
    override = _compose("docker-compose.override.yml")
    settings = {
        c["conn_id"]: c
        for c in yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"][
            "connections"
        ]
    }
    envs = [compose["x-airflow-common"]["environment"]]
    envs += [override["services"][name]["environment"] for name in AIRFLOW_SERVICES]
    for env in envs:
        conns = _connections(env)
        db = conns["databricks_default"]
        assert (db.conn_type, db.host, db.port, db.schema) == (
            "databricks",
            "local-workspace",
            8765,
            "http",
        )
        assert (
            "BlobEndpoint=http://azurite:10000/devstoreaccount1"
            in conns["wasb_default"].extra_dejson["connection_string"]
        )
        # The report links open where the host's browser reaches Azurite.
        assert env["ECOM_PUBLIC_BLOB_ENDPOINT"] == "http://127.0.0.1:10000/devstoreaccount1"
    assert (
        settings["databricks_default"]["conn_port"],
        settings["databricks_default"]["conn_schema"],
    ) == (8765, "http")
    assert "azurite:10000" in settings["wasb_default"]["conn_extra"]["connection_string"]


def test_the_databricks_pool_is_created_everywhere_the_stack_starts():
    """Astro settings and the compose init create the pool the job tasks run in, with the
    local environment's name and slots (a task in a missing pool is never scheduled)."""
    from ecom_airflow.config import LOCAL

    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]["pools"]
    assert {(p["pool_name"], p["pool_slot"]) for p in settings} == {
        (LOCAL.databricks_pool, LOCAL.databricks_pool_slots)
    }
    init = " ".join(_compose("docker-compose.yaml")["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in init
    assert f"airflow pools set {LOCAL.databricks_pool} {LOCAL.databricks_pool_slots} " in init


def test_env_example_holds_no_real_secret():
    text = (ROOT / ".env.example").read_text()
    assert not re.search(r"dapi[0-9a-f]{32}", text)
    assert "LOCAL_WORKSPACE_TOKEN=" in text
    values = re.findall(r"^[A-Z_]+=(.*)$", text, re.M)
    assert values and all("change-me" in value for value in values)
