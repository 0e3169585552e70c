"""Faults around the Databricks runs: many submissions at once, a backfill submitted in one go,
the workspace restarted under a run in flight (the Airflow worker killed while it polls is an
e2e test on the stack's real scheduler: ``tests/e2e/test_stack_worker_kill.py``).

One warm local workspace with two slots for the module (its own state folder; ``databricks_default``
points at it), restarted in place (same port, token and state) by the last test. The jobs are
the real ``ingest_events.py`` reading the generated days from the Volume, submitted by the real
``DatabricksSubmitRunOperator`` built as the DAGs build it; every table they leave is compared,
whole, with the same days ingested in order by a clean run in the test process.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pendulum
import psutil
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.jobs import SparkPythonTask, SubmitTask
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from tenacity import stop_after_delay, wait_fixed

from local.workspace.process import RunningWorkspace, free_port, start_workspace, stop_workspace
from tests.support import airflow_runs
from tests.support.env import environment
from tests.support.landing import DAYS, LANDING
from tests.support.tables import delta_tables, table_names
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]

SLOTS = 2


@dataclass
class Workspace:
    """A local workspace that a test can kill and start again at the same address."""

    state: Path
    port: int
    token: str
    running: RunningWorkspace | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def warehouse(self) -> Path:
        return self.state / "warehouse"

    def start(self) -> None:
        self.running = start_workspace(
            self.state, port=self.port, token=self.token, max_concurrent_runs=SLOTS
        )

    def client(self) -> WorkspaceClient:
        return WorkspaceClient(host=self.url, token=self.token)

    def runs_named(self, name: str) -> list:
        """Runs of that name, oldest first."""
        return sorted(
            (r for r in self.client().jobs.list_runs() if r.run_name == name),
            key=lambda r: r.run_id,
        )


@pytest.fixture(scope="module")
def ws(session_dir, volumes):
    """The module's workspace, the generated days copied into its Volume, and
    ``databricks_default`` pointing at it for the module."""
    workspace = Workspace(
        state=(session_dir / "reliability-workspace").resolve(),
        port=free_port(),
        token=uuid.uuid4().hex,
    )
    shutil.copytree(volumes, workspace.state / "volumes", dirs_exist_ok=True)
    workspace.start()
    connection = {
        "conn_type": "databricks",
        "host": "127.0.0.1",
        "port": workspace.port,
        "schema": "http",
        "password": workspace.token,
    }
    try:
        with environment(AIRFLOW_CONN_DATABRICKS_DEFAULT=json.dumps(connection)):
            yield workspace
    finally:
        if workspace.running is not None:
            stop_workspace(workspace.running.process)


def _submit(client: WorkspaceClient, python_file: str, parameters: list[str], name: str) -> int:
    return client.jobs.submit(
        run_name=name,
        tasks=[
            SubmitTask(
                task_key="main",
                spark_python_task=SparkPythonTask(python_file=python_file, parameters=parameters),
            )
        ],
    ).run_id


def _wait(client: WorkspaceClient, run_id: int):
    return client.jobs.wait_get_run_job_terminated_or_skipped(
        run_id=run_id, timeout=timedelta(minutes=20)
    )


def _assert_bronze_equals(spark, ws: Workspace, schema: str, reference: str, days) -> None:
    """Every table the workspace's jobs wrote in ``schema`` holds exactly the reference rows
    of ``days`` (all columns, any order), and no table is missing or extra."""
    written = delta_tables(spark, ws.warehouse, schema)
    expected = table_names(spark, reference)
    assert sorted(written) == expected
    wanted = F.col("ingest_date").cast("string").isin(list(days))
    for table, frame in written.items():
        assertDataFrameEqual(frame, spark.table(f"{reference}.{table}").where(wanted))


def test_many_submissions_at_once_queue_and_all_succeed(spark, ws):
    """Three runs per slot (6 to 2 slots) submitted at the same moment from as many threads:
    each queues, runs, succeeds with its own result; the run list has every one; never more
    runs at once than slots."""
    client = ws.client()
    tables = [f"rel_burst.t{i:02d}_{uuid.uuid4().hex[:6]}" for i in range(3 * SLOTS)]
    start = threading.Barrier(len(tables))
    run_ids: dict[str, int] = {}

    def submit(table: str) -> None:
        start.wait()
        run_ids[table] = _submit(
            client, "local/jobs/hello_delta.py", ["--table", table], f"burst {table}"
        )

    threads = [threading.Thread(target=submit, args=(t,)) for t in tables]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(run_ids.values())) == len(tables)  # one run per submission, none merged

    finished = {table: _wait(client, run_id) for table, run_id in run_ids.items()}
    assert {t: r.state.result_state.value for t, r in finished.items()} == dict.fromkeys(
        tables, "SUCCESS"
    )
    listed = {r.run_id for r in client.jobs.list_runs()}
    assert set(run_ids.values()) <= listed  # none lost
    for table, run in finished.items():
        # Each run did its own work: its log names its table, the table holds its rows.
        logs = client.jobs.get_run_output(run.tasks[0].run_id).logs
        assert f"{table}: sum of squares 285" in logs
        schema, name = table.split(".")
        folder = ws.warehouse / f"{schema}.db" / name
        assert spark.read.format("delta").load(str(folder)).count() == 10
    # The slots held: at no moment did more than two runs of the burst run at once.
    events = sorted(
        [(r.start_time, 1) for r in finished.values()]
        + [(r.end_time, -1) for r in finished.values()]
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= SLOTS


def test_a_backfill_submitted_at_once_equals_the_days_ingested_in_order(
    spark, ws, bronze_sequential
):
    """All days of a new bronze schema submitted together (two run at once, both creating the
    tables): every run succeeds and the tables equal the day-by-day ingest."""
    client = ws.client()
    schema = f"rel_burst_bronze_{uuid.uuid4().hex[:6]}"
    params = ["--catalog", "spark_catalog", "--landing-dir", LANDING, "--bronze-schema", schema]
    run_ids = [
        _submit(client, "spark_jobs/ingest_events.py", ["--ds", ds, *params], f"{schema} {ds}")
        for ds in reversed(DAYS)
    ]
    results = [_wait(client, run_id) for run_id in run_ids]
    errors = {
        r.run_id: client.jobs.get_run_output(r.tasks[0].run_id).error
        for r in results
        if r.state.result_state.value != "SUCCESS"
    }
    assert errors == {}
    _assert_bronze_equals(spark, ws, schema, bronze_sequential, DAYS)


def _survivors(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running (zombies count as ended) after waiting up to ``timeout``
    seconds; one that exits while it is being looked at has ended, not failed the test."""

    def running(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [process for process in alive if running(process)]


def test_a_workspace_killed_abruptly_takes_its_running_jobs_with_it(ws):
    """SIGKILL of the server (no clean-up): the driver running a 2-minute job, its JVM and
    the idle driver die within seconds, not when the job would have ended; after the restart
    the run is INTERNAL_ERROR, and it stays the only thing that ever ran it."""
    client = ws.client()
    run_id = _submit(client, "local/jobs/sleep_job.py", ["--seconds", "120"], "long")
    wait_for(
        lambda: client.jobs.get_run(run_id).state.life_cycle_state.value == "RUNNING",
        600,
        "the long run starting",
    )
    processes = psutil.Process(ws.running.process.pid).children(recursive=True)
    assert len(processes) >= 2  # at least a driver and its JVM
    ws.running.process.kill()
    ws.running.process.wait()
    assert _survivors(processes, timeout=15) == []
    ws.start()
    state = client.jobs.get_run(run_id).state
    assert state.life_cycle_state.value == "INTERNAL_ERROR"
    assert "restarted" in state.state_message


def test_workspace_restarted_mid_run_the_retry_resubmits_and_the_tables_end_right(
    spark, airflow_db, ws, bronze_sequential
):
    """The workspace is killed while the task's run is in flight and started again: the run
    ends INTERNAL_ERROR and its job processes die with the server; the task fails that try
    and its retry submits a new run; the tables equal a clean ingest of the date."""
    dag_id = f"rel_restart_{uuid.uuid4().hex[:8]}"
    schema = f"rel_restart_{uuid.uuid4().hex[:6]}"
    ds = DAYS[2]
    name = airflow_runs.run_name(dag_id, ds)
    # The operator's HTTP retries span the restart (the DAGs' defaults give up after ~3 s and
    # leave the rest to the Airflow retry, a minute later): the try then sees the run's end.
    dag = airflow_runs.ingest_dag(
        dag_id,
        schema,
        databricks_retry_args={"stop": stop_after_delay(180), "wait": wait_fixed(1)},
    )
    orphans: list[psutil.Process] = []
    failures: list[BaseException] = []

    def restart_mid_run() -> None:
        try:
            wait_for(
                lambda: any(
                    r.state.life_cycle_state.value == "RUNNING" for r in ws.runs_named(name)
                ),
                600,
                "the task's run starting",
            )
            server = psutil.Process(ws.running.process.pid)
            orphans.extend(server.children(recursive=True))  # drivers, JVMs, job processes
            ws.running.process.kill()  # abrupt: the server gets no chance to clean up
            ws.running.process.wait()
            ws.start()
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    killer = threading.Thread(target=restart_mid_run, daemon=True)
    killer.start()
    dag_run = dag.test(logical_date=pendulum.parse(ds))
    killer.join(timeout=60)
    assert not failures, failures

    assert dag_run.state == "success"
    first, retry = ws.runs_named(name)
    assert first.state.life_cycle_state.value == "INTERNAL_ERROR"
    assert "restarted" in first.state.state_message
    assert retry.state.result_state.value == "SUCCESS"
    session = airflow_db.Session()
    assert airflow_runs.task_instance(dag_id, session).try_number == 2
    # Nothing of the old server runs on: the interrupted job cannot write after its retry.
    assert orphans and _survivors(orphans, timeout=30) == []
    _assert_bronze_equals(spark, ws, schema, bronze_sequential, [ds])
