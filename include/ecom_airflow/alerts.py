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
"""

from __future__ import annotations

import logging
from typing import Any

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
