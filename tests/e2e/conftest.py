"""The full local stack of the end-to-end tests: one stack on free ports, shared by every test
file of this folder (starting it takes a minute or two) and stopped after the folder's last test,
and one backfill of the daily chain on it, which the files share too (a few minutes). Besides the
project's DAGs the stack loads the tests' own (``tests/support/stack_dags/``, a DAG bundle of
their own), which stay paused until a test runs them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from local.stack.airflow_client import AirflowClient
from local.stack.config import StackConfig
from local.stack.services import down, up
from local.story.story import PIPELINES, run_job, workspace_client
from local.workspace.process import free_port
from tests.support.e2e import (
    BACKFILL_DAYS,
    BLOCKING_DAY,
    HEADER,
    STACK_TEST_DAGS,
    WARNING_DAY,
    backfill_chain,
)
from tests.support.landing import LANDING

HERE = Path(__file__).resolve().parent
_RUNNING: list[StackConfig] = []  # the stack while it runs (at most one)


@pytest.fixture(scope="session")
def stack(session_dir):
    config = StackConfig(
        state=session_dir / "e2e-stack",
        workspace_port=free_port(),
        mlflow_port=free_port(),
        azurite_port=free_port(),
        airflow_port=free_port(),
        test_dags=STACK_TEST_DAGS,
    )
    config.secrets = config._load_secrets()
    _RUNNING.append(config)
    try:
        up(config)
        yield config
    finally:
        _stop()


def _stop() -> None:
    while _RUNNING:
        down(_RUNNING.pop())


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the stack once this folder's last test is done, not at the end of the session: the
    stack (Airflow's services, a workspace with a warm Spark JVM, MLflow, Azurite) serves this
    folder alone, and the tests after it should not share the machine with it. Called for the
    tests of this folder only (a conftest's hook)."""
    if nextitem is None or not nextitem.path.resolve().is_relative_to(HERE):
        _stop()


@pytest.fixture(scope="session")
def airflow(stack):
    env = stack.client_env()
    client = AirflowClient(env["AIRFLOW_API_URL"], env["AIRFLOW_USERNAME"], env["AIRFLOW_PASSWORD"])
    client.wait_for_dags(PIPELINES)
    return client


@pytest.fixture(scope="session")
def daily_backfill(stack, airflow) -> dict[str, list[dict]]:
    """Four generated days backfilled on the whole daily chain at once: each DAG's runs.

    ``BACKFILL_DAYS`` are clean. ``WARNING_DAY`` also lands three absurd but well-formed
    prices (a warning expectation), ``BLOCKING_DAY`` a broken export whose lines cannot be
    parsed (10% of the day quarantined: a blocking expectation). Each DAG's run of a date waits
    for its upstream DAG's run of the same date. The browser tests read the runs and reports;
    the stack tests check them, then clear a task of the first date (the others are left as
    the backfill made them)."""
    workspace = workspace_client(stack)
    days = [*BACKFILL_DAYS, WARNING_DAY, BLOCKING_DAY]
    run_job(
        workspace,
        "generate",
        "spark_jobs/generate_events.py",
        [
            "--start-date",
            days[0],
            "--days",
            str(len(days)),
            "--landing-dir",
            LANDING,
            "--events-per-day",
            "2000",
        ],
    )
    absurd = "\n".join(
        f"{WARNING_DAY} 12:00:0{i} UTC,view,1000{i},2053013555631882655,,acme,250000.00,5{i},s-{i}"
        for i in range(3)
    )
    workspace.files.upload(
        f"{LANDING}/{WARNING_DAY}/absurd_prices.csv",
        io.BytesIO(f"{HEADER}\n{absurd}\n".encode()),
        overwrite=True,
    )
    broken = "\n".join(f"{BLOCKING_DAY} 10:00:00 UTC,view,{i}" for i in range(220))
    workspace.files.upload(
        f"{LANDING}/{BLOCKING_DAY}/broken_export.csv",
        io.BytesIO(f"{HEADER}\n{broken}\n".encode()),
        overwrite=True,
    )
    return backfill_chain(airflow, days)
