"""The test session's bootstrap and its SparkSession. Shared machinery lives in tests/support/
(its fixtures and hooks are registered below); area-specific fixtures in the conftest.py of each
test folder.

Airflow reads its configuration when first imported, so the test session's AIRFLOW_HOME (a
temporary folder with its own SQLite metadata database) is set here, before any test module
imports Airflow.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# One temporary folder per test run; with pytest-xdist (`PYTEST_WORKERS=N make test`) each
# worker keeps its own state (Airflow home, warehouse, stacks) in a subfolder of it. The first
# process to import this file (the xdist controller, or pytest alone) creates the folder and
# hands it to the workers it starts through the environment.
_RUN_DIR = Path(os.environ.get("ECOM_TEST_RUN_DIR") or tempfile.mkdtemp(prefix="ecom-tests-"))
os.environ["ECOM_TEST_RUN_DIR"] = str(_RUN_DIR)
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_SESSION_DIR = _RUN_DIR / _WORKER
_SESSION_DIR.mkdir(parents=True, exist_ok=True)
if _WORKER != "main" and not hasattr(sys.modules["__main__"], "__file__"):
    # An xdist worker's __main__ (execnet's) has no file and no spec, which pyspark.sql.connect
    # (imported by Great Expectations) takes for a doctest run and answers with sys.exit(0).
    sys.modules["__main__"].__file__ = "pytest-xdist-worker"

os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
    f"sqlite:///{_SESSION_DIR / 'airflow' / 'airflow.db'}"
)

# Spark settings for tiny test data, in this process and every job process the tests start
# (they inherit the environment). Each query of a test reads a few rows, so generating and
# compiling Java for it (Janino) costs more than running it: no whole-stage code generation, and
# the expressions evaluated by Spark's interpreter (`spark.sql.codegen.factoryMode=NO_CODEGEN`,
# the mode Spark's own tests run every expression in besides codegen; same rows). One shuffle
# partition, one partition for Delta's snapshot state (figures in docs/performance.md).
# `make run` and the benchmarks keep the defaults. Set LOCAL_SPARK_CONF / LOCAL_SPARK_SHUFFLE_PARTITIONS to override.
# One gap of the interpreter: `spark.catalog.listTables` fails (EXPRESSION_DECODING_FAILED); list
# a schema's tables with `SHOW TABLES IN <schema>` (tests/support/tables.py).
TEST_SPARK_CONF = (
    "spark.sql.codegen.wholeStage=false spark.sql.codegen.factoryMode=NO_CODEGEN "
    "spark.databricks.delta.snapshotPartitions=1"
)
os.environ.setdefault("LOCAL_SPARK_CONF", TEST_SPARK_CONF)
os.environ.setdefault("LOCAL_SPARK_SHUFFLE_PARTITIONS", "1")
# Every Spark JVM the tests start (each worker's session, the workspaces' warm
# drivers, cold job processes, the e2e stack) maps the class-data-sharing archive `make test`
# builds, instead of loading and verifying Spark's classes itself: 27% off a file that starts a
# dozen drivers (local/spark/class_archive.py, docs/performance.md). Without a current
# archive (pytest run directly on a fresh checkout) the JVMs start as usual.
from local.spark.class_archive import ARCHIVE, ARCHIVE_ENV, current  # noqa: E402

if ARCHIVE_ENV not in os.environ and current(ARCHIVE):
    os.environ[ARCHIVE_ENV] = str(ARCHIVE)

pytest_plugins = [
    "tests.support.ordering",  # how the files are shared out to pytest-xdist workers
    "tests.support.services",  # airflow_db, workspace, databricks_conn, azurite, tracking, ...
    "tests.support.spark",  # spark_codegen
]


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """A temporary folder for the whole test session (state of local services)."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def local_layout(session_dir):
    """A LocalLayout whose warehouse and volumes live in the session's temporary folder."""
    from local.spark.runtime import LocalLayout

    return LocalLayout(state=session_dir / "state")


@pytest.fixture(scope="session")
def spark(local_layout):
    """One local SparkSession with Delta for the whole test session."""
    from local.spark.runtime import build_session

    session = build_session(local_layout)
    yield session
    session.stop()


def pytest_report_header(config):
    archive = os.environ.get(ARCHIVE_ENV)
    return f"spark class archive: {archive or 'none (make test builds it)'}"


def pytest_sessionfinish(session, exitstatus):
    """Remove the run's state (Delta tables, stacks' logs) unless a test failed or
    ``ECOM_KEEP_TEST_STATE`` is set: then its folder is printed for the post-mortem. Under
    pytest-xdist each worker removes its own subfolder and the controller the rest."""
    import logging
    import shutil

    # py4j logs "Closing down clientserver connection" (INFO) when a gateway connection is
    # garbage-collected at interpreter exit, after pytest has closed the stream the logging
    # handler writes to: a "--- Logging error ---" traceback on stderr, after the summary.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if exitstatus != 0 or os.environ.get("ECOM_KEEP_TEST_STATE"):
        if _WORKER == "main":
            print(f"\ntest state kept in {_RUN_DIR}")
        return
    shutil.rmtree(_SESSION_DIR if _WORKER != "main" else _RUN_DIR, ignore_errors=True)
