"""An Airflow worker killed while its task polls a Databricks run, on the e2e stack: the stack's
own scheduler notices that the task stopped heartbeating and puts it up for retry, and the
retry reattaches to the run the first try submitted instead of submitting another.

The DAG (``tests/support/stack_dags/worker_kill.py``) runs ``local/jobs/sleep_job.py`` on the
local workspace through the provider's durable ``DatabricksSubmitRunOperator``, which keeps the
run id in the task state store. Once the task is running and its run is too, the test SIGKILLs
the task's supervisor (the LocalExecutor worker process that runs ``supervise`` for the task
instance) and the task process under it: no heartbeat, no ``on_kill``, no state change from
the worker. The stack's ``[scheduler] task_instance_heartbeat_timeout`` is a minute
(``local/stack/services.py``), so the scheduler acts about a minute later.
"""

from __future__ import annotations

import contextlib
import uuid

import psutil
import pytest

from local.stack.airflow_client import AirflowAPIError
from local.story.story import wait_for_run, workspace_client
from tests.support.stack_dags.worker_kill import DAG_ID, TASK_ID
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.airflow, pytest.mark.timeout(1800)]

# Long enough that the run is still in flight when the retry starts (the kill, a minute without
# heartbeat, the retry delay and the new try's start take about 90 s); the retry reattaches to
# a run that has already succeeded just as well.
SECONDS = 150


def _runs_named(workspace, name: str) -> list:
    """The workspace's runs of that name, oldest first."""
    return sorted(
        (r for r in workspace.jobs.list_runs() if r.run_name == name), key=lambda r: r.run_id
    )


def _kill_worker(ti: dict) -> list[psutil.Process]:
    """SIGKILL the task's supervisor (whose process title names the task instance id) first,
    so it cannot report the task's end, then everything under it (the task process, which
    runs in a process group of its own); return the processes killed."""
    task = psutil.Process(ti["pid"])
    supervisor = task.parent()
    assert ti["id"] in " ".join(supervisor.cmdline()), supervisor.cmdline()
    processes = [supervisor, *supervisor.children(recursive=True)]
    assert task in processes
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    _, alive = psutil.wait_procs(processes, timeout=15)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return processes


def test_worker_killed_while_polling_the_retry_reattaches_to_the_same_run(stack, airflow):
    airflow.wait_for_dags([DAG_ID])
    workspace = workspace_client(stack)
    run_id = f"worker_kill_{uuid.uuid4().hex[:8]}"
    name = f"{DAG_ID}.{TASK_ID} [{run_id}]"  # the DAG's run_name
    ti_path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}"

    def polling() -> tuple[dict, int] | None:
        """The task instance and the run id it stored, once it polls its running run."""
        with contextlib.suppress(AirflowAPIError):  # no task instance yet, or a busy database
            ti = airflow.request("GET", ti_path)
            runs = _runs_named(workspace, name)
            if ti["state"] != "running" or ti["pid"] is None or not runs:
                return None
            if runs[0].state.life_cycle_state.value != "RUNNING":
                return None
            stored = airflow.request("GET", f"{ti_path}/state-store/databricks_run_id")
            return ti, int(stored["value"])
        return None

    airflow.unpause(DAG_ID)
    try:
        body = {"dag_run_id": run_id, "logical_date": None, "conf": {"seconds": SECONDS}}
        airflow.request("POST", f"/dags/{DAG_ID}/dagRuns", retry_busy=60, json=body)
        ti, stored = wait_for(polling, 600, "the task polling its running Databricks run", 1)
        _kill_worker(ti)
        at_kill = workspace.jobs.get_run(stored).state.life_cycle_state.value
        after_kill = airflow.request("GET", ti_path)
        dag_run = wait_for_run(airflow, DAG_ID, run_id, timeout_minutes=15)
    finally:
        run = airflow.dag_run(DAG_ID, run_id)
        if run is not None and run["state"] not in ("success", "failed"):
            airflow.fail_dag_run(DAG_ID, run_id, "Stopped by the test after it failed.")
        airflow.request("PATCH", f"/dags/{DAG_ID}", retry_busy=60, json={"is_paused": True})

    # The worker was killed while the run was in flight, and told Airflow nothing.
    assert at_kill in ("PENDING", "RUNNING")
    assert (after_kill["state"], after_kill["try_number"]) == ("running", 1)
    # The scheduler put the silent task up for retry: a heartbeat timeout of this try.
    timeouts = airflow.request(
        "GET",
        "/eventLogs",
        params={"dag_id": DAG_ID, "run_id": run_id, "event": "heartbeat timeout"},
    )["event_logs"]
    assert len(timeouts) == 1, timeouts
    # The retry succeeded, and so did the DAG run.
    assert dag_run["state"] == "success", dag_run
    final = airflow.request("GET", ti_path)
    assert (final["state"], final["try_number"]) == ("success", 2), final
    # The retry reattached to the first try's run: one run of that name, and it succeeded.
    retry_log = str(airflow.request("GET", f"{ti_path}/logs/2", params={"full_content": True}))
    assert "Reconnecting to existing job" in retry_log or "Job already completed" in retry_log
    [run] = _runs_named(workspace, name)
    assert (run.run_id, run.state.result_state.value) == (stored, "SUCCESS")
