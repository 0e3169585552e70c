"""Benchmark 1: per-run overhead of the warm local cluster versus a cold process per run.

Two local workspaces run side by side (one warm, one cold); the same trivial Spark job is
submitted to each in alternation and timed from submission to termination, as a client (the
Airflow operator) sees it. Target: warm at least 10x cheaper.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import Comparison, Figure
from local.workspace.process import running_workspace

JOB = "local/jobs/trivial_spark.py"


def _timed_run(client) -> float:
    from databricks.sdk.service.jobs import SparkPythonTask, SubmitTask

    started = time.perf_counter()
    waiter = client.jobs.submit(
        run_name="bench-trivial",
        tasks=[SubmitTask(task_key="main", spark_python_task=SparkPythonTask(python_file=JOB))],
    )
    run = client.jobs.wait_get_run_job_terminated_or_skipped(
        run_id=waiter.run_id, timeout=timedelta(minutes=5)
    )
    elapsed = time.perf_counter() - started
    if run.state.result_state.value != "SUCCESS":
        raise RuntimeError(f"benchmark run failed: {run.state.state_message}")
    return elapsed


def run(repeats: int = 5) -> tuple[list[Comparison], list[Figure]]:
    from databricks.sdk import WorkspaceClient

    warm = Figure("warm run", "s")
    cold = Figure("cold run", "s")
    with (
        tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp,
        running_workspace(Path(tmp) / "warm", mode="warm") as warm_ws,
        running_workspace(Path(tmp) / "cold", mode="cold") as cold_ws,
    ):
        warm_client = WorkspaceClient(host=warm_ws.url, token=warm_ws.token)
        cold_client = WorkspaceClient(host=cold_ws.url, token=cold_ws.token)
        _timed_run(warm_client)  # the warm driver's first run pays JVM start-up once
        for i in range(repeats):
            warm.samples.append(_timed_run(warm_client))
            cold.samples.append(_timed_run(cold_client))
            print(
                f"  run {i + 1}/{repeats}: warm {warm.samples[-1]:.2f}s, "
                f"cold {cold.samples[-1]:.2f}s",
                flush=True,
            )
    comparison = Comparison(
        benchmark="1. run overhead",
        description="cold process per run / warm cluster, trivial Spark job",
        numerator=cold,
        denominator=warm,
        target=">= 10x",
    )
    comparison.meets_target = comparison.ratio >= 10
    return [comparison], [warm, cold]
