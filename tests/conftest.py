"""Shared fixtures. Area-specific fixtures live in the conftest.py of each test folder.

Airflow reads its configuration when first imported, so the test session's AIRFLOW_HOME (a
temporary folder with its own SQLite metadata database) is set here, before any test module
imports Airflow.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
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
# partition, one partition for Delta's snapshot state. Measured on the feature and silver jobs
# (docs/performance.md): 171 s with the cluster defaults, 149 s without whole-stage codegen, and
# 52.0 s -> 38.7 s for eight warm pipeline days with the interpreter. `make run` and the
# benchmarks keep the defaults. Set LOCAL_SPARK_CONF / LOCAL_SPARK_SHUFFLE_PARTITIONS to override.
# One gap of the interpreter: `spark.catalog.listTables` fails (EXPRESSION_DECODING_FAILED); list
# a schema's tables with `SHOW TABLES IN <schema>` (tests/support/reliability.py).
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
def spark_codegen(spark):
    """``with spark_codegen():`` Spark's code generation (the cluster default) for a test's
    heavier queries, instead of the interpreter of TEST_SPARK_CONF: from a few hundred
    thousand rows on, compiled code wins (the drift-year simulation's 470,000 events: silver
    and features 34 s -> 17 s)."""
    keys = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}

    @contextlib.contextmanager
    def codegen():
        before = {key: spark.conf.get(key, None) for key in keys}
        for key, value in keys.items():
            spark.conf.set(key, value)
        try:
            yield
        finally:
            for key, value in before.items():
                if value is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, value)

    return codegen


@pytest.fixture(scope="session")
def spark(local_layout):
    """One local SparkSession with Delta for the whole test session."""
    from local.spark.runtime import build_session

    session = build_session(local_layout)
    yield session
    session.stop()


# Local services shared by the test folders that run Airflow for real (tests/airflow,
# tests/security): a metadata database, a local workspace and Azurite, one of each per session.
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


AZURITE_BIN = ROOT / ".local" / "node" / "node_modules" / ".bin" / "azurite-blob"


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

    Started from the copy `make setup` installs; it stores its data in the session folder and
    is stopped with SIGINT (Azurite's clean shutdown) at the end of the session.
    """
    from local.stack.services import AZURITE_ACCOUNT, AZURITE_KEY
    from local.workspace.process import free_port

    if not AZURITE_BIN.exists():
        pytest.fail(f"Azurite is not installed at {AZURITE_BIN}: run `make setup` first")
    location = session_dir / "azurite"
    location.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(location / "azurite.log", "ab") as log:
        process = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--location",
                str(location),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"Azurite exited with code {process.returncode}: "
                    f"{(location / 'azurite.log').read_text(errors='replace')[-2000:]}"
                )
            with socket.socket() as sock:
                sock.settimeout(1)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"Azurite did not listen on port {port} within 60 s")
            time.sleep(0.2)
        blob_url = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        running = RunningAzurite(
            port=port,
            blob_url=blob_url,
            connection_string=(
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={blob_url};"
            ),
            account=AZURITE_ACCOUNT,
            key=AZURITE_KEY,
        )
        connection = {
            "conn_type": "wasb",
            "extra": {"connection_string": running.connection_string},
        }
        with _environment("AIRFLOW_CONN_WASB_DEFAULT", json.dumps(connection)):
            yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def _environment(name: str, value: str):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


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


# Seconds a test of each kind (marker or fixture) takes, to order the files when no whole run
# has been recorded yet.
_ESTIMATED_SECONDS = {
    "e2e": 120.0,
    "stack": 120.0,
    "spark": 20.0,
    "workspace": 20.0,
    "airflow": 10.0,
    "airflow_db": 10.0,
}
_FILE_TIMES = ROOT / ".local" / "test-timings" / "files.json"  # written by tests/support/timing.py


def _group(nodeid: str) -> str:
    """The unit of work of a pytest-xdist worker: a test file, or the whole e2e folder."""
    path = nodeid.split("::", 1)[0]
    return "tests/e2e" if path.startswith("tests/e2e/") else path


def pytest_report_header(config):
    archive = os.environ.get(ARCHIVE_ENV)
    return f"spark class archive: {archive or 'none (make test builds it)'}"


def pytest_xdist_make_scheduler(config, log):
    """``PYTEST_WORKERS=N make test`` (``--dist loadfile``): each test file runs whole on one
    worker, so its module fixtures are built once, and the e2e folder on one worker, so the
    full local stack starts once per run. Units go out in collection order (see below)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """The longest files first (the last whole run's times, where recorded, otherwise an
    estimate from the markers and fixtures), so the xdist workers finish together instead of
    one waiting on a long file started last. Within a file the tests keep their order. A run
    in one process keeps pytest's order."""
    if _WORKER == "main":
        return
    recorded: dict[str, float] = {}
    if _FILE_TIMES.exists():
        with contextlib.suppress(ValueError, OSError):
            recorded = json.loads(_FILE_TIMES.read_text())
    cost: dict[str, float] = {}
    first: dict[str, int] = {}
    counted: set[str] = set()
    for index, item in enumerate(items):
        group = _group(item.nodeid)
        first.setdefault(group, index)
        path = item.nodeid.split("::", 1)[0]
        if path in recorded:
            seconds = 0.0 if path in counted else recorded[path]
            counted.add(path)
        else:
            kinds = {m.name for m in item.iter_markers()} | set(getattr(item, "fixturenames", ()))
            seconds = next((v for k, v in _ESTIMATED_SECONDS.items() if k in kinds), 0.5)
        cost[group] = cost.get(group, 0.0) + seconds
    items.sort(key=lambda item: (-cost[_group(item.nodeid)], first[_group(item.nodeid)]))


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
