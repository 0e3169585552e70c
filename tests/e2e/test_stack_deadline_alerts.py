"""Deadline alerts through the e2e stack: a run whose job is slow misses its deadline and on-call
gets the alert; a run whose job is fast enough alerts no one.

The stack's own scheduler notices the missed deadline and its triggerer runs the project's
callback (``ecom_airflow.alerts.notify_deadline_missed``), which posts through the Slack
provider's hook to the ``ecom_alerts`` connection, created through the REST API for the test
and pointing at a local HTTP server that stands in for the chat service. The DAG
(``tests/support/stack_dags/deadline_alert.py``) has the project's deadline
(``deadline_alert``) with a test-sized interval, and runs ``local/jobs/sleep_job.py`` on the
local workspace for as long as each run asks.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import pytest

from ecom_airflow.alerts import ALERT_CONN_ID
from local.story.story import wait_for_run
from tests.support.stack_dags.deadline_alert import DAG_ID, DEADLINE, TASK_ID
from tests.support.waiting import wait_for
from tests.support.webhook import webhook

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.airflow, pytest.mark.timeout(1800)]

SLOW_SECONDS = DEADLINE.total_seconds() * 4  # still running well after its deadline


def _trigger(airflow, run_id: str, logical_date: str, seconds: float) -> None:
    body = {
        "dag_run_id": run_id,
        "logical_date": f"{logical_date}T00:00:00Z",
        "conf": {"seconds": seconds},
    }
    airflow.request("POST", f"/dags/{DAG_ID}/dagRuns", retry_busy=60, json=body)


def _alerts(received: list[dict]) -> list[str]:
    """The alerts about this DAG's runs (the stack's other DAGs alert through the same hook)."""
    return [post["text"] for post in received if f"*{DAG_ID}*" in post["text"]]


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _utc(moment: datetime) -> str:
    """A timestamp as the alert writes it."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def test_a_slow_job_misses_the_deadline_and_alerts_a_fast_one_does_not(stack, airflow):
    airflow.wait_for_dags([DAG_ID])
    fast_id, slow_id = "deadline_fast_job", "deadline_slow_job"
    with webhook() as (url, received):
        connection = {"connection_id": ALERT_CONN_ID, "conn_type": "slackwebhook", "password": url}
        airflow.request("POST", "/connections", retry_busy=60, json=connection)
        try:
            airflow.unpause(DAG_ID)
            # One after the other: the local workspace runs one job at a time. The fast run's
            # deadline passes while the slow one runs, before the slow run's own deadline.
            _trigger(airflow, fast_id, "2019-10-05", seconds=1)
            fast = wait_for_run(airflow, DAG_ID, fast_id, timeout_minutes=10)
            _trigger(airflow, slow_id, "2019-10-06", seconds=SLOW_SECONDS)
            wait_for(
                lambda: any(slow_id in text for text in _alerts(received)),
                timeout=DEADLINE.total_seconds() + 300,
                what="the slow run's deadline alert",
                interval=1,
            )
            slow = airflow.dag_run(DAG_ID, slow_id)
        finally:
            # The slow job has served its purpose: stop it (its task is killed, the run
            # cancelled on the workspace) rather than wait for it.
            if airflow.dag_run(DAG_ID, slow_id) is not None:
                airflow.fail_dag_run(DAG_ID, slow_id, "Stopped by the test once it had alerted.")
            airflow.request("PATCH", f"/dags/{DAG_ID}", retry_busy=60, json={"is_paused": True})
            airflow.request("DELETE", f"/connections/{ALERT_CONN_ID}", retry_busy=60)

    # The premises: the fast job was done well within its deadline, the slow one was still
    # running past its own, and the fast run's deadline had passed before the slow run's.
    assert fast["state"] == "success", fast
    fast_took = _moment(fast["end_date"]) - _moment(fast["queued_at"])
    assert fast_took < DEADLINE, f"the fast run took {fast_took}: the deadline cannot judge it"
    slow_deadline = _moment(slow["queued_at"]) + DEADLINE
    assert slow["state"] == "running", slow
    assert _moment(fast["queued_at"]) + DEADLINE < slow_deadline

    # The slow run alerted once, while its job was running; the fast run never did.
    texts = _alerts(received)
    assert not [text for text in texts if fast_id in text], texts
    [alert] = [text for text in texts if slow_id in text]
    assert f"*{DAG_ID}* missed its deadline for 2019-10-06: the run has not finished" in alert
    assert f"Deadline: {_utc(slow_deadline)} " in alert
    assert f"run queued at {_utc(_moment(slow['queued_at']))}; manual run, running)" in alert
    assert f"Running: {TASK_ID} (running)" in alert
    assert f"Airflow run: {stack.airflow_url}/dags/{DAG_ID}/runs/{quote(slow_id)}" in alert
