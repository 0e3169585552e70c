"""Failure notifications for on-call: which task failed, why, and where its Databricks run is.

Every task of the project gets :func:`notify_failure` as ``on_failure_callback`` (through the
DAGs' ``default_args``). It posts one message to an incoming webhook (Slack, or a Teams/Mattermost
channel that accepts Slack's ``{"text": ...}`` body) through the Slack provider's
``SlackWebhookHook``, configured by the Airflow connection ``ecom_alerts`` (type
``slackwebhook``; the webhook URL in the password field, from a secrets backend or an
``AIRFLOW_CONN_ECOM_ALERTS`` variable). Without that connection it only logs the message: the
local stack and the tests need no webhook.

The message carries the DAG, task, logical date and try, the error's first lines, the task log
link and, for Databricks tasks, the run page URL the ``DatabricksSubmitRunOperator`` pushed to
XCom (``run_page_url``) before the run failed.

A run that is late, rather than failed, is reported by :func:`notify_deadline_missed`, the
callback of every pipeline DAG's deadline (``ecom_airflow.tasks.deadline_alert``): Airflow's
scheduler notices the missed deadline and the triggerer runs this coroutine, which posts the
DAG, run, logical date, deadline, the tasks still running or waiting and the run's page in the
UI through the same connection.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

ALERT_CONN_ID = "ecom_alerts"
MAX_ERROR_CHARS = 1500

log = logging.getLogger(__name__)


def failure_message(context: dict[str, Any]) -> str:
    """The text of the alert for a failed task instance (plain text, Slack mrkdwn friendly)."""
    ti = context["ti"]
    exception = context.get("exception")
    error = str(exception).strip() if exception is not None else "no exception recorded"
    if exception is not None:
        error = f"{type(exception).__name__}: {error}"
    if len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + " ..."
    max_tries = getattr(ti, "max_tries", None)
    tries = f"try {ti.try_number}" + (f" of {max_tries + 1}" if max_tries is not None else "")
    lines = [
        f":red_circle: *{ti.dag_id}.{ti.task_id}* failed for {context.get('ds')} ({tries})",
        f"Error: {error}",
    ]
    run_page_url = _databricks_run_url(ti)
    if run_page_url:
        lines.append(f"Databricks run: {run_page_url}")
    log_url = getattr(ti, "log_url", None)
    if log_url:
        lines.append(f"Task log: {log_url}")
    lines.append(f"Airflow run: {ti.run_id}")
    return "\n".join(lines)


def _databricks_run_url(ti) -> str | None:
    try:
        return ti.xcom_pull(task_ids=ti.task_id, key="run_page_url")
    except Exception:  # a missing XCom must not hide the failure itself
        log.debug("no run_page_url XCom for %s", ti.task_id, exc_info=True)
        return None


def _alert_connection_configured(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # "not found" has different classes across Airflow layers
        return False
    return True


def notify_failure(context: dict[str, Any], conn_id: str = ALERT_CONN_ID) -> None:
    """``on_failure_callback``: post the failure to the ``ecom_alerts`` webhook, if configured.

    Never raises: a broken webhook is logged, and the task's own failure stays what on-call sees.
    """
    message = failure_message(context)
    if not _alert_connection_configured(conn_id):
        log.info("No '%s' connection: alert not sent.\n%s", conn_id, message)
        return
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    try:
        SlackWebhookHook(slack_webhook_conn_id=conn_id).send_text(message)
    except Exception:  # alerting must not fail the callback
        log.exception("Could not send the failure alert through connection '%s'", conn_id)
    else:
        log.info("Failure alert sent through connection '%s'", conn_id)


# Task states of a late run, as on-call reads them: what is running, what waits and on what.
RUNNING_STATES = {"running", "queued", "restarting"}
WAITING_STATES = {
    "deferred": "deferred",
    "up_for_reschedule": "up_for_reschedule",
    "up_for_retry": "up_for_retry",
    "scheduled": "scheduled, waiting for a slot",
    None: "not started",
}
FAILED_STATES = {"failed", "upstream_failed"}


def deadline_message(
    dag_run: dict[str, Any],
    deadline: dict[str, Any],
    task_states: dict[str, str | None] | None,
    *,
    base_url: str,
) -> str:
    """The text of the alert for a run that missed its deadline.

    ``dag_run`` is the run as the REST API shows it (what Airflow passes a deadline callback),
    ``deadline`` the missed deadline (``deadline_time``), ``task_states`` the run's task states
    by task id (None: they could not be read), ``base_url`` the Airflow UI's.
    """
    dag_id, run_id = dag_run["dag_id"], dag_run["dag_run_id"]
    logical_date = dag_run.get("logical_date")
    date = f"for {_when(logical_date)[:10]}" if logical_date else "(no logical date)"
    lines = [
        f":alarm_clock: *{dag_id}* missed its deadline {date}: the run has not finished",
        f"Deadline: {_when(deadline['deadline_time'])} (run queued at "
        f"{_when(dag_run.get('queued_at'))}; {dag_run.get('run_type', '?')} run, "
        f"{dag_run.get('state', '?')})",
    ]
    if task_states is None:
        lines.append("Tasks: their states could not be read; open the run")
    else:
        running = sorted(t for t, s in task_states.items() if s in RUNNING_STATES)
        waiting = sorted(
            (t for t, s in task_states.items() if s in WAITING_STATES),
            key=lambda t: (list(WAITING_STATES).index(task_states[t]), t),
        )
        failed = sorted(t for t, s in task_states.items() if s in FAILED_STATES)
        if running:
            lines.append("Running: " + ", ".join(f"{t} ({task_states[t]})" for t in running))
        if waiting:
            lines.append(
                "Waiting: " + ", ".join(f"{t} ({WAITING_STATES[task_states[t]]})" for t in waiting)
            )
        if failed:
            lines.append("Failed: " + ", ".join(f"{t} ({task_states[t]})" for t in failed))
        if not (running or waiting or failed):
            lines.append("Tasks: none running or waiting (the run is finishing)")
    lines.append(f"Airflow run: {run_url(base_url, dag_id, run_id)}")
    return "\n".join(lines)


def run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The page of a DAG run in the Airflow 3 UI."""
    return f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id)}"


def _when(value: datetime | str | None) -> str:
    """A timestamp of the callback's context (a datetime, or ISO text from the REST model)."""
    if value is None:
        return "unknown"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # Airflow keeps every timestamp in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class DeadlineAlertError(RuntimeError):
    """The deadline alert could not be posted (Airflow marks the callback failed)."""


async def notify_deadline_missed(context: dict[str, Any], conn_id: str = ALERT_CONN_ID) -> None:
    """Deadline callback (``AsyncCallback``, run by the triggerer): post "deadline missed".

    Airflow's scheduler marks a deadline missed once its time has passed and the run has not
    succeeded; the triggerer then awaits this with ``context = {"dag_run": <the run, as the
    REST API shows it>, "deadline": {"id", "deadline_time"}}``. A run that already failed is not
    reported again: its failed task has alerted (:func:`notify_failure`), or someone marked it
    failed on purpose. Without the ``ecom_alerts`` connection the message is logged as a
    warning. A webhook that refuses the post raises :class:`DeadlineAlertError`, so the
    callback shows as failed in Airflow instead of passing silently.
    """
    dag_run, deadline = context["dag_run"], context["deadline"]
    dag_id, run_id = dag_run["dag_id"], dag_run["dag_run_id"]
    if dag_run.get("state") == "failed":
        log.info(
            "%s run %s missed its deadline %s but had already failed: no deadline alert (its "
            "failure alerted, or it was marked failed by hand)",
            dag_id,
            run_id,
            _when(deadline["deadline_time"]),
        )
        return
    message = deadline_message(
        dag_run, deadline, await _task_states(dag_id, run_id), base_url=_ui_base_url()
    )
    if not await _alert_connection_configured_async(conn_id):
        log.warning("No '%s' connection: deadline alert not sent.\n%s", conn_id, message)
        return
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    try:
        await SlackWebhookHook(slack_webhook_conn_id=conn_id).async_send(text=message)
    except Exception as error:
        raise DeadlineAlertError(
            f"the deadline alert of {dag_id} run {run_id} could not be sent through "
            f"connection '{conn_id}': {type(error).__name__}: {error}\n{message}"
        ) from error
    log.info("Deadline alert of %s run %s sent through connection '%s'", dag_id, run_id, conn_id)


async def _task_states(dag_id: str, run_id: str) -> dict[str, str | None] | None:
    """The run's task states by task id, read through the triggerer's execution API client;
    None outside a triggerer (or when the read fails): the alert goes out without them."""
    from asgiref.sync import sync_to_async

    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=dag_id, run_ids=[run_id]
        )
    except Exception:  # the alert matters more than its details
        log.warning("Could not read the task states of %s run %s", dag_id, run_id, exc_info=True)
        return None
    return dict(states.get(run_id, {}))


async def _alert_connection_configured_async(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        await BaseHook.aget_connection(conn_id)
    except Exception:  # "not found" has different classes across Airflow layers
        return False
    return True


def _ui_base_url() -> str:
    from airflow.sdk.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080/")
