"""Fixtures for tests that run Airflow for real: a metadata database and a local workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from local_workspace.testing import running_workspace


@pytest.fixture(scope="session")
def airflow_db():
    """Create the session's Airflow metadata database (SQLite in the session folder)."""
    subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "airflow"), "db", "migrate"],
        check=True, capture_output=True, env=os.environ, timeout=300,
    )  # fmt: skip
    from airflow import settings

    settings.configure_orm()
    return settings


@pytest.fixture(scope="session")
def workspace(session_dir):
    """A warm local workspace running two jobs at once, shared by the Airflow tests."""
    with running_workspace(session_dir / "airflow-workspace", max_concurrent_runs=2) as ws:
        yield ws


@pytest.fixture(scope="session")
def databricks_conn(workspace):
    """``databricks_default`` pointing at the local workspace, as `make up` configures it."""
    value = json.dumps(
        {
            "conn_type": "databricks",
            "host": workspace.host,
            "port": workspace.port,
            "schema": "http",
            "password": workspace.token,
        }
    )
    previous = os.environ.get("AIRFLOW_CONN_DATABRICKS_DEFAULT")
    os.environ["AIRFLOW_CONN_DATABRICKS_DEFAULT"] = value
    yield "databricks_default"
    if previous is None:
        os.environ.pop("AIRFLOW_CONN_DATABRICKS_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_DATABRICKS_DEFAULT"] = previous
