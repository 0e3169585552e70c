"""Build ``DatabricksSubmitRunOperator`` tasks for job scripts from the environment config.

DAGs declare *which* script runs with *which* parameters; this module turns that into the Jobs
API ``runs/submit`` payload of the current environment (cluster, git source, libraries,
timeout), so the same DAG file runs on the local workspace and on Databricks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor

from ecom_airflow.alerts import notify_deadline_missed, notify_failure
from ecom_airflow.config import Environment, current_environment, script_libraries

OWNER = "ml-platform"

# Every task: two retries with exponential backoff (1, 2 minutes; at most 10), and an alert
# with the Databricks run URL when the last try fails (``ecom_alerts`` connection, if set).
DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "on_failure_callback": notify_failure,
}


Parameters = dict[str, str | bool | list[str]]


def job_parameters(parameters: Parameters) -> list[str]:
    """``{"--ds": "{{ ds }}", "--dry-run": True}`` -> ``["--ds", "{{ ds }}", "--dry-run"]``.

    Argparse style, order kept; ``True`` is a bare flag, ``False`` leaves the flag out and a
    list repeats the flag once per value (``{"--suite": ["a", "b"]}`` -> ``--suite a --suite b``).
    """
    flat: list[str] = []
    for flag, value in parameters.items():
        if not flag.startswith("--"):
            raise ValueError(f"job parameter {flag!r} must be a long option such as '--ds'")
        if value is True:
            flat.append(flag)
        elif isinstance(value, list):
            for item in value:
                flat += [flag, str(item)]
        elif value is not False:
            flat += [flag, str(value)]
    return flat


# Cost attribution per pipeline and task, next to the environment's own cluster tags (project,
# env). The operator's ``json`` is a templated field: Airflow renders these when the task runs.
TASK_COST_TAGS: dict[str, str] = {"pipeline": "{{ dag.dag_id }}", "task": "{{ task.task_id }}"}


def job_cluster(env: Environment) -> dict[str, Any]:
    """The ``new_cluster`` of a run: the environment's, plus :data:`TASK_COST_TAGS` when the
    environment tags its clusters (Databricks; the local workspace ignores the cluster)."""
    cluster = dict(env.new_cluster)
    if "custom_tags" in cluster:
        cluster["custom_tags"] = {**cluster["custom_tags"], **TASK_COST_TAGS}
    return cluster


SERVERLESS_ENVIRONMENT_KEY = "job_libraries"


def job_task(payload: dict[str, Any]) -> dict[str, Any]:
    """The one task of a ``runs/submit`` body this project sends (``tasks[0]``)."""
    [task] = payload["tasks"]
    return task


def submit_run_payload(
    env: Environment,
    script: str,
    parameters: Parameters,
    *,
    timeout: timedelta,
    task_key: str = "main",
) -> dict[str, Any]:
    """The ``runs/submit`` body for ``spark_jobs/<script>`` in ``env``: the multi-task form of
    Jobs API 2.1+ (``tasks: [{task_key, spark_python_task, ...}]``, what the SDK's
    ``jobs.submit`` takes), with one task.

    The task runs on a new job cluster with the job libraries its script imports
    (``env.compute == "cluster"``; none when the cluster policy installs them,
    ``env.policy_libraries``), or on serverless jobs compute (``"serverless"``): then the task
    names an environment (``environment_key``) that the run defines with the same libraries as
    its dependencies. The libraries of a script: :data:`ecom_airflow.config.SCRIPT_LIBRARIES`.
    ``git_source``, ``timeout_seconds`` (and the operator's ``run_name`` and
    ``idempotency_token``) are the run's.

    ``python -m deploy.payloads render --env <env>`` renders every one a DAG sends and validates
    it against the SDK's request types.
    """
    if "/" in script or not script.endswith(".py"):
        raise ValueError(f"script {script!r} must be a file name in spark_jobs/, e.g. 'x.py'")
    spark_task: dict[str, Any] = {
        "python_file": f"spark_jobs/{script}",
        "parameters": job_parameters(parameters),
    }
    libraries = script_libraries(script, env.libraries)
    task: dict[str, Any] = {"task_key": task_key, "spark_python_task": spark_task}
    payload: dict[str, Any] = {"tasks": [task], "timeout_seconds": int(timeout.total_seconds())}
    if env.compute == "serverless":
        task["environment_key"] = SERVERLESS_ENVIRONMENT_KEY
        spec: dict[str, Any] = {"environment_version": env.serverless_environment_version}
        if libraries:
            spec["dependencies"] = list(libraries)
        payload["environments"] = [{"environment_key": SERVERLESS_ENVIRONMENT_KEY, "spec": spec}]
    else:
        task["new_cluster"] = job_cluster(env)
        if libraries and not env.policy_libraries:
            task["libraries"] = [{"pypi": {"package": pin}} for pin in libraries]
    if env.git_source:
        spark_task["source"] = "GIT"
        payload["git_source"] = env.git_source
    return payload


class RerunSettingError(RuntimeError):
    """The deployment would not rerun a cleared job task (see :func:`require_rerun_on_clear`)."""


def require_rerun_on_clear(env: Environment) -> None:
    """Refuse to build job tasks for a deployment where clearing a task would not rerun its job.

    The Databricks operator stores each run id in Airflow's task state store and, on a later
    try, reattaches to that run, also when it already succeeded: a cleared task then succeeds
    again without running Spark. ``[state_store] clear_on_success = True`` drops the stored id
    once the task succeeds, so a clear submits a fresh run (what on-call engineers expect, and
    what the runbook tells them). The local stack and the container images set it; any other
    environment's DAGs fail to import (an import error in the UI naming this) until the
    deployment does.
    """
    if env.name == "local":
        return
    from airflow.configuration import conf

    if not conf.getboolean("state_store", "clear_on_success", fallback=False):
        raise RerunSettingError(
            f"environment {env.name!r}: [state_store] clear_on_success is off, so clearing a "
            "successful Databricks job task would reattach to its old run instead of running "
            "the job again; set AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS=True in the "
            "deployment (docs/runbook.md, Rerun one date)"
        )


def databricks_job(
    *,
    task_id: str,
    script: str,
    parameters: Parameters,
    timeout: timedelta | None = None,
    env: Environment | None = None,
    **operator_kwargs: Any,
) -> DatabricksSubmitRunOperator:
    """A task that runs ``spark_jobs/<script>`` as a one-time Databricks run.

    The Airflow ``execution_timeout`` and the run's ``timeout_seconds`` are the same value, so
    a run never outlives its task. ``idempotency_token`` is the task instance id, which is new
    for every try: a transport-level retry of the submit call cannot start a second run, while
    an Airflow retry or a cleared task does start a fresh one (unless the operator reattaches to
    a run still in flight, which it does through the task state store).

    Every job task takes a slot of the environment's ``databricks_pool`` while its run is
    submitted and polled, which bounds the Databricks runs in flight across all DAGs (backfills
    included); the rest wait as *scheduled* tasks in Airflow, not as queued runs on Databricks.
    """
    env = env or current_environment()
    require_rerun_on_clear(env)
    timeout = timeout or env.default_timeout
    operator_kwargs.setdefault("pool", env.databricks_pool)
    return DatabricksSubmitRunOperator(
        task_id=task_id,
        json=submit_run_payload(env, script, parameters, timeout=timeout, task_key=task_id),
        run_name=f"{{{{ dag.dag_id }}}}.{task_id} [{{{{ ds }}}}]",
        idempotency_token="{{ ti.id }}",
        databricks_conn_id=env.databricks_conn_id,
        polling_period_seconds=env.polling_period_seconds,
        execution_timeout=timeout,
        **operator_kwargs,
    )


# The name of every run the job tasks start, ``<dag_id>.<task_id> [<ds>]`` (databricks_job,
# sync_online_store): how monitoring.job_runs tells the DAGs' runs from any other and finds
# their DAG, task and date. clickstream/monitoring/job_runs.py parses the same pattern (a test
# holds the two equal). DAG ids have no dot; a task id may (task groups).
RUN_NAME_PATTERN = (
    r"(?P<dag_id>[^.\s\[\]]+)\.(?P<task_id>[^\s\[\]]+)"
    r" \[(?P<ds>\d{4}-\d{2}-\d{2})\]"
)


def as_of_logical_date(logical_date, params=None, **_context):
    """The upstream run to wait for: the ``as_of`` date of the run's params, else its own date.

    A DAG run triggered by hand (or by the drift pipeline) names the date it works on in its
    conf (``{"as_of": "2019-11-30"}``); the upstream run of that date has the logical date
    ``as_of`` 00:00 UTC under the shared daily schedule.
    """
    import pendulum

    as_of = (params or {}).get("as_of")
    return pendulum.parse(as_of, tz="UTC").start_of("day") if as_of else logical_date


def last_day_of_interval(logical_date, data_interval_end, **_context):
    """The daily run of the last day of a (monthly) data interval: its end minus one day.

    The sensor passes its own logical date first, then the context as keywords.
    """
    return data_interval_end.subtract(days=1)


def wait_for_dag(
    upstream_dag_id: str,
    *,
    env: Environment | None = None,
    follow_as_of: bool = False,
    execution_date_fn=None,
    execution_delta: timedelta | None = None,
) -> ExternalTaskSensor:
    """Wait until ``upstream_dag_id``'s run of the same logical date has succeeded.

    The daily DAGs share one schedule, so "the same date" is the same logical date, whether the
    runs were scheduled, triggered or created by a backfill. A failed upstream run fails this
    task at once (the date is blocked, e.g. by a data quality gate) instead of waiting for the
    timeout. No retries: a failed upstream run is an outcome, not a transient error, and
    retrying would only hold back the failure (and its alert) by the backoff; once the upstream
    date is fixed, clearing this sensor resumes the date. Deferrable: a waiting sensor holds no
    worker slot, only a triggerer coroutine.
    ``follow_as_of`` waits for the run of the ``as_of`` param instead; ``execution_date_fn``
    (e.g. :func:`last_day_of_interval`) for any other date, ``execution_delta`` for the run
    that long before (``timedelta(days=7)``: the run of ``ds - 7``).
    """
    env = env or current_environment()
    return ExternalTaskSensor(
        task_id=f"wait_for_{upstream_dag_id}",
        external_dag_id=upstream_dag_id,
        allowed_states=["success"],
        failed_states=["failed"],
        retries=0,
        deferrable=True,
        poke_interval=env.sensor_poke_seconds,
        timeout=env.sensor_timeout.total_seconds(),
        execution_date_fn=as_of_logical_date if follow_as_of else execution_date_fn,
        execution_delta=execution_delta,
    )


def sync_online_store(*, task_id: str, env: Environment | None = None):
    """Trigger the Databricks pipeline of the synced online table, when the environment has one.

    Returns None when ``online_sync_pipeline_id`` is unset (locally, the Delta table itself is
    the online table), so the DAG adds no task.
    """
    env = env or current_environment()
    if not env.online_sync_pipeline_id:
        return None
    require_rerun_on_clear(env)  # a cleared sync must trigger the pipeline again, too
    return DatabricksSubmitRunOperator(
        task_id=task_id,
        json={
            "tasks": [
                {
                    "task_key": "sync_online_store",
                    "pipeline_task": {"pipeline_id": env.online_sync_pipeline_id},
                }
            ],
            "timeout_seconds": int(env.default_timeout.total_seconds()),
        },
        run_name=f"{{{{ dag.dag_id }}}}.{task_id} [{{{{ ds }}}}]",
        idempotency_token="{{ ti.id }}",
        databricks_conn_id=env.databricks_conn_id,
        polling_period_seconds=env.polling_period_seconds,
        execution_timeout=env.default_timeout,
        pool=env.databricks_pool,
    )


START_DATE = "2019-10-01"


def deadline_alert(interval: timedelta):
    """A DAG's ``deadline``: a run not succeeded ``interval`` after it was queued alerts on-call
    (:func:`ecom_airflow.alerts.notify_deadline_missed`, run by the triggerer).

    Counted from the run's queued time (``DAGRUN_QUEUED_AT``), not from its logical date. A
    scheduled run is queued when its interval has ended (00:00 UTC after the day), so for the
    schedule both give the same time of day; but a backfill, or a run triggered for an old date,
    would be past a deadline counted from its logical date before it starts, and every date of
    a backfill would alert at once. Counted from queuing, a backfill (all its runs are queued
    when it is created, then wait for the DAG's active-run slots) alerts only for the dates it
    has not finished within ``interval``. Airflow sets the deadline when the run is created: a
    cleared task keeps its run's deadline, a run that succeeds in time drops it.
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=interval,
        callback=AsyncCallback(notify_deadline_missed),
    )


def daily_dag(dag_id: str, *, doc_md: str | None, tags: list[str], **dag_kwargs: Any):
    """A DAG on the shared daily schedule of the pipelines.

    Data-interval semantics (the run for ``ds=D`` starts after D has ended and processes D), UTC,
    the project's start date, no implicit catch-up (backfills are explicit), the project's
    ``default_args``. The same schedule everywhere is what lets a DAG wait for its upstream
    DAG's run of the same logical date. A run must succeed within the environment's
    ``daily_deadline`` of being queued, or on-call gets a "deadline missed" alert
    (:func:`deadline_alert`).
    """
    dag_kwargs.setdefault("max_active_runs", 3)
    dag_kwargs.setdefault("deadline", deadline_alert(current_environment().daily_deadline))
    return _pipeline_dag(dag_id, "@daily", doc_md=doc_md, tags=tags, **dag_kwargs)


def _pipeline_dag(dag_id: str, cron: str, *, doc_md, tags, **dag_kwargs: Any):
    """Data-interval cron schedule in UTC, the project's start date, no catch-up, defaults."""
    import pendulum
    from airflow.sdk import DAG, CronDataIntervalTimetable

    return DAG(
        dag_id=dag_id,
        schedule=CronDataIntervalTimetable(cron, timezone="UTC"),
        start_date=pendulum.parse(START_DATE, tz="UTC"),
        catchup=False,
        default_args=DEFAULT_ARGS,
        tags=tags,
        doc_md=doc_md,
        **dag_kwargs,
    )


def report_prefix(pipeline: str, report: str, *, ds: str = "{{ ds }}", env=None) -> str:
    """Volume path of a report, no suffix: ``<reports>/<pipeline>/<ds>/<report>``.

    The blob the report is uploaded to mirrors it: ``<container>/<pipeline>/<ds>/<report>.html``.
    """
    env = env or current_environment()
    return f"{env.reports_dir}/{pipeline}/{ds}/{report}"


def data_quality_checks(*, pipeline: str, report: str, suites: list[str], env=None):
    """Validate -> upload the report -> gate: three tasks, returned in that order.

    ``validate_<report>`` runs the Great Expectations suites on the date's data and writes the
    HTML report and a JSON summary without failing on the results; ``upload_<report>_report``
    publishes the page to Blob (so the report is there even when the data is bad); only then
    ``check_<report>_gate`` fails the run on a blocking expectation, naming it and its observed
    value. A failed gate fails the DAG run, which stops the downstream DAGs of that date.
    """
    from ecom_plugins import DataQualityGateOperator, HtmlReportToBlobOperator

    env = env or current_environment()
    prefix = report_prefix(pipeline, report, env=env)
    validate = databricks_job(
        task_id=f"validate_{report}",
        script="validate_data.py",
        parameters={
            "--ds": "{{ ds }}",
            "--catalog": env.catalog,
            "--suite": suites,
            "--output": prefix,
            "--airflow-run-id": "{{ run_id }}",
        },
        env=env,
    )
    upload = HtmlReportToBlobOperator(
        task_id=f"upload_{report}_report",
        report_path=f"{prefix}.html",
        pipeline=pipeline,
        report_name=report,
        container=env.reports_container,
        databricks_conn_id=env.databricks_conn_id,
        wasb_conn_id=env.wasb_conn_id,
    )
    gate = DataQualityGateOperator(
        task_id=f"check_{report}_gate",
        summary_path=f"{prefix}.json",
        databricks_conn_id=env.databricks_conn_id,
    )
    validate >> upload >> gate
    return validate, upload, gate


def publish_and_branch(
    job,
    *,
    report: str,
    pipeline: str,
    report_name: str,
    upload_task_id: str,
    sensor_class,
    sensor_task_id: str,
    reason: str,
    as_of: str,
    retraining_run_id: str,
    env=None,
    **sensor_kwargs: Any,
):
    """The tail of a monitoring DAG, after a ``job`` that writes ``<report>.html`` and
    ``<report>.json``: ``upload_task_id`` publishes the page to Blob, and a branching sensor
    (``sensor_class``, given ``sensor_kwargs`` too) reads the summary and follows
    ``trigger_retraining`` (``model_training`` as run ``retraining_run_id`` with conf
    ``{"reason", "as_of", "drift_summary"}``; an existing run is not started twice) or
    ``skip_retraining``; ``done`` runs after whichever branch was taken. Returns the sensor."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import TriggerRule

    from ecom_plugins import HtmlReportToBlobOperator

    env = env or current_environment()
    upload = HtmlReportToBlobOperator(
        task_id=upload_task_id,
        report_path=f"{report}.html",
        pipeline=pipeline,
        report_name=report_name,
        container=env.reports_container,
        databricks_conn_id=env.databricks_conn_id,
        wasb_conn_id=env.wasb_conn_id,
    )
    check = sensor_class(
        task_id=sensor_task_id,
        summary_path=f"{report}.json",
        training_dag_id="model_training",
        retraining_run_id=retraining_run_id,
        databricks_conn_id=env.databricks_conn_id,
        poke_interval=env.sensor_poke_seconds,
        timeout=env.sensor_timeout.total_seconds(),
        **sensor_kwargs,
    )
    retrain = TriggerDagRunOperator(
        task_id="trigger_retraining",
        trigger_dag_id="model_training",
        trigger_run_id=retraining_run_id,
        conf={"reason": reason, "as_of": as_of, "drift_summary": f"{report}.json"},
        skip_when_already_exists=True,
    )
    skip = EmptyOperator(task_id="skip_retraining")
    # Runs after whichever branch was taken; a skipped branch must not skip it.
    done = EmptyOperator(task_id="done", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    job >> [upload, check]
    check >> [retrain, skip] >> done
    return check


# Sunday 06:00 UTC: after the daily chain of Saturday (queued at 00:00) has normally finished,
# and before the chain of Sunday starts, so maintenance rarely meets a pipeline write.
WEEKLY_CRON = "0 6 * * 0"


def weekly_dag(dag_id: str, *, doc_md: str | None, tags: list[str], **dag_kwargs: Any):
    """A DAG run once a week, Sunday 06:00 UTC (:data:`WEEKLY_CRON`), for the week that ended.

    Data-interval semantics as the other pipelines: the run of ``ds`` (a Sunday) starts a week
    later, after its interval has ended. One run at a time.
    """
    dag_kwargs.setdefault("max_active_runs", 1)
    return _pipeline_dag(dag_id, WEEKLY_CRON, doc_md=doc_md, tags=tags, **dag_kwargs)


def monthly_dag(dag_id: str, *, doc_md: str | None, tags: list[str], **dag_kwargs: Any):
    """A DAG whose run for ``ds`` = the first of a month processes that calendar month (UTC).

    It runs after the month has ended; ``data_interval_start`` / ``data_interval_end`` are the
    first day of the month and of the next one. A run must succeed within the environment's
    ``monthly_deadline`` of being queued (:func:`deadline_alert`).
    """
    dag_kwargs.setdefault("max_active_runs", 1)
    dag_kwargs.setdefault("deadline", deadline_alert(current_environment().monthly_deadline))
    return _pipeline_dag(dag_id, "@monthly", doc_md=doc_md, tags=tags, **dag_kwargs)
