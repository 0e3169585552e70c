"""Session fixtures of the local services the test folders share: an Airflow metadata
database, a local workspace and Azurite for the tests that run Airflow for real, and an MLflow
tracking store for the model tests; one of each per session (per xdist worker).

Registered by ``pytest_plugins`` in tests/conftest.py. Each service is started by the project's
own code: the workspace by ``local.workspace.process``, Azurite by the stack's
``local.stack.services``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.env import environment


@pytest.fixture(scope="session")
def airflow_db():
    """Create the session's Airflow metadata database (SQLite in the session folder)."""
    subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ,
        timeout=300,
    )
    from airflow import settings

    settings.configure_orm()
    return settings


@pytest.fixture(scope="session")
def workspace(session_dir):
    """A warm local workspace running two jobs at once, shared by the Airflow tests."""
    from local.workspace.process import running_workspace

    with running_workspace(session_dir / "airflow-workspace", max_concurrent_runs=2) as ws:
        yield ws


@pytest.fixture(scope="session")
def databricks_conn(workspace):
    """``databricks_default`` pointing at the local workspace, as `make up` configures it."""
    value = {
        "conn_type": "databricks",
        "host": workspace.host,
        "port": workspace.port,
        "schema": "http",
        "password": workspace.token,
    }
    with environment(AIRFLOW_CONN_DATABRICKS_DEFAULT=json.dumps(value)):
        yield "databricks_default"


@dataclass(frozen=True)
class RunningAzurite:
    """A running Azurite blob service and the connection string of its development account."""

    port: int
    blob_url: str
    connection_string: str
    account: str
    key: str


@pytest.fixture(scope="session")
def azurite(session_dir):
    """Azurite's blob service on a free port, and ``wasb_default`` pointing at it.

    Started as `make up` starts it (the stack's own service definition, from the copy
    `make setup` installs), its data and log in the session folder; stopped as `make down` stops
    it, with SIGINT (Azurite's clean shutdown), at the end of the session.
    """
    from local.stack.config import AZURITE_ACCOUNT, AZURITE_KEY, StackConfig
    from local.stack.services import down, services, start
    from local.workspace.process import free_port

    state = session_dir / "azurite-stack"
    # Only Azurite of this stack is started: the other ports are never listened on.
    with environment(ECOM_LOCAL_DIR=str(state), ECOM_AZURITE_PORT=str(free_port())):
        config = StackConfig.from_env()
    [service] = [s for s in services(config) if s.name == "azurite"]
    if not Path(service.command[0]).exists():
        pytest.fail(f"Azurite is not installed at {service.command[0]}: run `make setup` first")
    for folder in (config.logs, config.pids, config.state / "azurite"):
        folder.mkdir(parents=True, exist_ok=True)
    try:
        start(config, service)
        running = RunningAzurite(
            port=config.azurite_port,
            blob_url=f"http://127.0.0.1:{config.azurite_port}/{AZURITE_ACCOUNT}",
            connection_string=config.azure_connection_string,
            account=AZURITE_ACCOUNT,
            key=AZURITE_KEY,
        )
        wasb = config.airflow_connections()["AIRFLOW_CONN_WASB_DEFAULT"]
        with environment(AIRFLOW_CONN_WASB_DEFAULT=wasb):
            yield running
    finally:
        down(config)


@pytest.fixture(scope="session")
def put_volume_file(workspace):
    """Write a file to a Unity Catalog Volume of the local workspace through the Files API."""
    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient(host=workspace.url, token=workspace.token)

    def put(path: str, content: bytes | str) -> None:
        data = content.encode() if isinstance(content, str) else content
        client.files.upload(path, io.BytesIO(data), overwrite=True)

    return put


@pytest.fixture(scope="session")
def tracking(tmp_path_factory):
    """A real MLflow tracking store and registry on SQLite, artifacts in a temporary folder;
    yields an experiment name. One per session (per xdist worker), shared by every folder: the
    tracking URI is process-wide, so a second store set up by another folder's fixture would
    take over the first folder's later tests (their experiment, unknown there, was then created
    with MLflow's default artifact root, ``./mlruns`` in the working tree)."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    experiment = f"/test/propensity-{uuid.uuid4().hex[:6]}"
    mlflow.create_experiment(experiment, artifact_location=str(root / "artifacts"))
    yield experiment
    mlflow.set_tracking_uri(previous)
