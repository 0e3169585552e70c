"""The deadline alert's message and delivery: what on-call reads when a run is late, posted
through the real Slack provider hook to a local webhook, and what happens without a connection,
for a run that already failed, and when the webhook refuses the post.

The callback runs here as Airflow's triggerer runs it (awaited with the context the scheduler
builds); the task states come from the triggerer's execution API client, which only the
end-to-end test has (``tests/e2e/test_stack_deadline_alerts.py``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse

from ecom_airflow.alerts import (
    ALERT_CONN_ID,
    DeadlineAlertError,
    deadline_message,
    notify_deadline_missed,
    run_url,
)
from tests.support.webhook import alert_connection, webhook

BASE_URL = "https://airflow.example.com/"
RUN_ID = "scheduled__2019-10-05T00:00:00+00:00"
DEADLINE = {"id": "0195", "deadline_time": datetime(2019, 10, 6, 4, 0, tzinfo=UTC)}


def _dag_run(**changes) -> dict:
    """A run as the scheduler hands it to the callback: the REST API's model, as JSON."""
    run = {
        "dag_id": "model_serving",
        "dag_run_id": RUN_ID,
        "logical_date": "2019-10-05T00:00:00Z",
        "queued_at": "2019-10-06T00:00:03.518000Z",
        "run_type": "scheduled",
        "state": "running",
    }
    return run | changes


def _context(**changes) -> dict:
    return {"dag_run": _dag_run(**changes), "deadline": DEADLINE}


def test_the_run_fields_read_are_those_of_the_rest_model_airflow_passes():
    assert set(_dag_run()) <= DAGRunResponse.model_fields.keys()


def test_the_message_names_the_run_the_deadline_what_runs_and_waits_and_the_page():
    states = {
        "wait_for_online_feature_table": "success",
        "score_users": "running",
        "recommend_products": "up_for_retry",
        "publish_scores": None,
        "check_scores": "scheduled",
        "skipped_branch": "skipped",
    }
    text = deadline_message(_dag_run(), DEADLINE, states, base_url=BASE_URL)
    assert text.splitlines() == [
        ":alarm_clock: *model_serving* missed its deadline for 2019-10-05: the run has not finished",
        "Deadline: 2019-10-06 04:00:00 UTC (run queued at 2019-10-06 00:00:03 UTC; scheduled run, "
        "running)",
        "Running: score_users (running)",
        "Waiting: recommend_products (up_for_retry), check_scores (scheduled, waiting for a slot), "
        "publish_scores (not started)",
        "Airflow run: https://airflow.example.com/dags/model_serving/runs/"
        "scheduled__2019-10-05T00%3A00%3A00%2B00%3A00",
    ]


def test_a_sensor_still_waiting_and_a_failed_task_are_named():
    states = {"wait_for_landing_files": "up_for_reschedule", "upstream": "deferred", "x": "failed"}
    text = deadline_message(_dag_run(), DEADLINE, states, base_url=BASE_URL)
    assert "Waiting: upstream (deferred), wait_for_landing_files (up_for_reschedule)" in text
    assert "Failed: x (failed)" in text
    assert "Running:" not in text


def test_without_task_states_the_alert_still_names_the_run():
    text = deadline_message(
        _dag_run(logical_date=None, run_type="manual"), DEADLINE, None, base_url=BASE_URL
    )
    assert "*model_serving* missed its deadline (no logical date)" in text
    assert "manual run" in text
    assert "Tasks: their states could not be read; open the run" in text
    assert text.endswith(run_url(BASE_URL, "model_serving", RUN_ID))


def test_the_callback_posts_the_alert_through_the_connection():
    with webhook() as (url, received), alert_connection(url):
        asyncio.run(notify_deadline_missed(_context()))
    [post] = received
    assert post["text"].startswith(
        ":alarm_clock: *model_serving* missed its deadline for 2019-10-05"
    )
    assert "Deadline: 2019-10-06 04:00:00 UTC" in post["text"]
    assert "/dags/model_serving/runs/scheduled__2019-10-05T00%3A00%3A00%2B00%3A00" in post["text"]


def test_without_a_connection_the_alert_is_logged_as_a_warning(caplog):
    with webhook() as (_url, received), alert_connection(None):
        with caplog.at_level(logging.INFO, logger="ecom_airflow.alerts"):
            asyncio.run(notify_deadline_missed(_context()))
    assert received == []
    [record] = [r for r in caplog.records if "deadline alert not sent" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"No '{ALERT_CONN_ID}' connection: deadline alert not")
    assert "*model_serving* missed its deadline for 2019-10-05" in record.getMessage()


def test_a_run_that_already_failed_is_not_reported_again(caplog):
    with webhook() as (url, received), alert_connection(url):
        with caplog.at_level(logging.INFO, logger="ecom_airflow.alerts"):
            asyncio.run(notify_deadline_missed(_context(state="failed")))
    assert received == []
    assert any("had already failed: no deadline alert" in r.getMessage() for r in caplog.records)


def test_a_refused_post_fails_the_callback_naming_the_run_and_connection():
    with webhook(status=500) as (url, received), alert_connection(url):
        with pytest.raises(DeadlineAlertError) as raised:
            asyncio.run(notify_deadline_missed(_context()))
    assert len(received) == 1
    message = str(raised.value)
    assert f"model_serving run {RUN_ID} could not be sent through connection" in message
    assert f"'{ALERT_CONN_ID}'" in message
    assert url not in message, "the webhook URL is the connection's secret"
