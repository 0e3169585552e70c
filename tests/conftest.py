"""Shared fixtures. Area-specific fixtures live in the conftest.py of each test folder.

Airflow reads its configuration when first imported, so the test session's AIRFLOW_HOME (a
temporary folder with its own SQLite metadata database) is set here, before any test module
imports Airflow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="ecom-tests-"))

os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
    f"sqlite:///{_SESSION_DIR / 'airflow' / 'airflow.db'}"
)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """A temporary folder for the whole test session (state of local services)."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def local_layout(session_dir):
    """A LocalLayout whose warehouse and volumes live in the session's temporary folder."""
    from local_workspace.spark_runtime import LocalLayout

    return LocalLayout(state=session_dir / "state")


@pytest.fixture(scope="session")
def spark(local_layout):
    """One local SparkSession with Delta for the whole test session."""
    from local_workspace.spark_runtime import build_session

    session = build_session(local_layout)
    yield session
    session.stop()


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's state (Delta tables, stacks' logs) unless a test failed or
    ``ECOM_KEEP_TEST_STATE`` is set: then its folder is printed for the post-mortem."""
    import shutil

    if exitstatus != 0 or os.environ.get("ECOM_KEEP_TEST_STATE"):
        print(f"\ntest state kept in {_SESSION_DIR}")
        return
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
