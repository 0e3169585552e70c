"""The full local stack of the end-to-end tests: one stack on free ports for the whole session,
shared by every test file of this folder (starting it takes a minute or two)."""

from __future__ import annotations

import socket

import pytest

from tools.airflow_api import AirflowClient
from tools.run_system import PIPELINES
from tools.stack import StackConfig, down, up


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def stack(session_dir):
    config = StackConfig(
        state=session_dir / "e2e-stack",
        workspace_port=_free_port(),
        mlflow_port=_free_port(),
        azurite_port=_free_port(),
        airflow_port=_free_port(),
    )
    config.secrets = config._load_secrets()
    try:
        up(config)
        yield config
    finally:
        down(config)


@pytest.fixture(scope="session")
def airflow(stack):
    env = stack.client_env()
    client = AirflowClient(env["AIRFLOW_API_URL"], env["AIRFLOW_USERNAME"], env["AIRFLOW_PASSWORD"])
    client.wait_for_dags(PIPELINES)
    return client
