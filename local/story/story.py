"""The stages of ``make run``: the plan of dates, and the steps that drive the local workspace
and Airflow through it (stack up, events, history load, backfills, drift check, the tables)."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ecom_airflow.config import LOCAL
from local.stack.airflow_client import TERMINAL_RUN_STATES, AirflowClient
from local.stack.config import StackConfig
from local.stack.services import up

# DAGs of the daily chain, in dependency order. All their backfills are created at once: each
# DAG's runs wait (deferrable sensor) for the upstream DAG's run of the same date.
PIPELINES = ("data_quality_validation", "offline_feature_table", "online_feature_table")
# Trained and served once, as of the last day: a model needs weeks of labelled history, and a
# backfill of serving would score past dates with today's champion.
ML_PIPELINES = ("model_training", "model_serving")
DRIFT_PIPELINE = "drift_detection"
# Collects every Databricks run of the story into monitoring.job_runs and reports on them.
MONITORING_PIPELINE = "pipeline_monitoring"


def log(message: str) -> None:
    print(f"[run] {message}", flush=True)


@dataclass(frozen=True)
class Story:
    """The dates of a ``make run``: history, drift, the seed training and the drift month."""

    month_start: date
    month_end: date
    days: list[str]
    drift_start: date
    seed_as_of: date
    airflow_days: list[str]  # the month's last days, run by the daily DAGs

    @property
    def history(self) -> list[str]:
        """The days loaded in one job before the DAGs take over."""
        return self.days[: len(self.days) - len(self.airflow_days)]

    @classmethod
    def build(
        cls,
        month: str | None,
        warmup_days: int | None,
        drift_day: int,
        today: date,
        airflow_days: int,
        first_training_days: int = LOCAL.first_training_days,
    ) -> Story:
        """The story's dates. The first champion is trained the day before the drift starts, on
        mature windows only (``first_training_days`` of data before it), so its training window,
        the drift check's reference, is neither drifted nor truncated. ``warmup_days`` (days
        before the month) defaults to the fewest that allow it."""
        if month:
            start = date.fromisoformat(f"{month}-01")
        else:
            start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        if end >= today:
            raise ValueError(f"--month {start:%Y-%m} has not ended yet: pick a past month")
        if not 1 <= drift_day <= end.day:
            raise ValueError(f"--drift-day must be a day of {start:%Y-%m} (1..{end.day})")
        if not 1 <= airflow_days <= end.day:
            raise ValueError(f"--airflow-days must be 1..{end.day} (days of {start:%Y-%m})")
        drift_start = start + timedelta(days=drift_day - 1)
        fewest = first_training_days - drift_day + 2
        if warmup_days is None:
            warmup_days = fewest
        if warmup_days < fewest:
            raise ValueError(
                f"--warmup-days {warmup_days} is too few: the first champion needs "
                f"{first_training_days} days of data (mature 30-day windows, then its training "
                f"and validation windows) before a training date ahead of the drift on "
                f"{drift_start}; use at least {fewest} (or a later --drift-day)"
            )
        first = start - timedelta(days=warmup_days)
        days = [(first + timedelta(days=i)).isoformat() for i in range((end - first).days + 1)]
        seed_as_of = first + timedelta(days=first_training_days)
        if seed_as_of.isoformat() >= days[-airflow_days]:
            raise ValueError(
                f"{len(days)} days are too few to train before the DAGs' last {airflow_days} "
                "days: raise --warmup-days or lower --airflow-days"
            )
        return cls(start, end, days, drift_start, seed_as_of, days[-airflow_days:])


@dataclass(frozen=True)
class Events:
    """How the synthetic click-stream of the story is generated."""

    seed: int
    per_day: int
    drift_scenario: str


class StageClock:
    """The time of each stage, from the end of the previous one."""

    def __init__(self, started: float) -> None:
        self.durations: dict[str, float] = {}
        self._mark = started

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.durations[name] = now - self._mark
        log(f"stage '{name}' done in {self.durations[name] / 60:.1f} min")
        self._mark = now


@dataclass
class Outcome:
    """What the stages leave for the summary."""

    airflow: AirflowClient
    runs: dict[str, list[dict]] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    operations: dict[str, Any] = field(default_factory=dict)  # the operations report's summary
    job_runs: dict[str, Any] = field(default_factory=dict)  # monitoring.job_runs vs runs/get


def workspace_client(config: StackConfig):
    from databricks.sdk import WorkspaceClient

    env = config.client_env()
    return WorkspaceClient(host=env["DATABRICKS_HOST"], token=env["DATABRICKS_TOKEN"])


def run_job(client, name: str, python_file: str, parameters: list[str], timeout_minutes: int = 30):
    """Submit ``python_file`` (relative to the project root) to the workspace and wait; raise
    with its error."""
    from databricks.sdk.service.jobs import SparkPythonTask, SubmitTask

    started = time.monotonic()
    waiter = client.jobs.submit(
        run_name=name,
        tasks=[
            SubmitTask(
                task_key="main",
                spark_python_task=SparkPythonTask(python_file=python_file, parameters=parameters),
            )
        ],
    )
    log(f"{name}: submitted run {waiter.run_id}")
    run = client.jobs.wait_get_run_job_terminated_or_skipped(
        run_id=waiter.run_id, timeout=timedelta(minutes=timeout_minutes)
    )
    if run.state.result_state is None or run.state.result_state.value != "SUCCESS":
        task_run_id = run.tasks[0].run_id if run.tasks else run.run_id
        output = client.jobs.get_run_output(task_run_id)
        raise RuntimeError(f"{name} failed: {output.error}\n(log: {run.run_page_url})")
    log(f"{name}: done in {time.monotonic() - started:.0f}s")
    return run


def wait_for_runs(
    airflow: AirflowClient, dag_id: str, days: list[str], timeout_minutes: int, on_poll=None
) -> list[dict]:
    deadline = time.monotonic() + timeout_minutes * 60
    last_line = ""
    while True:
        if on_poll:
            on_poll()
        runs = [
            r
            for r in airflow.dag_runs(dag_id, days[0], days[-1])
            if r["run_type"] != "manual"  # e.g. a drift retraining started meanwhile
        ]
        by_state: dict[str, int] = {}
        for run in runs:
            by_state[run["state"]] = by_state.get(run["state"], 0) + 1
        done = sum(by_state.get(s, 0) for s in TERMINAL_RUN_STATES)
        line = f"{dag_id}: {done}/{len(days)} runs finished " + json.dumps(by_state)
        if line != last_line:
            log(line)
            last_line = line
        if len(runs) >= len(days) and done == len(runs):
            return runs
        if time.monotonic() > deadline:
            raise RuntimeError(f"{dag_id}: runs not finished after {timeout_minutes} minutes")
        time.sleep(5)


def run_backfills(
    airflow: AirflowClient,
    dag_ids: tuple[str, ...],
    days: list[str],
    timeout_minutes: int,
    on_poll=None,
    conf: dict | None = None,
) -> dict[str, list[dict]]:
    """Backfill ``days`` on every DAG of the chain, as from the UI (each run with ``conf``),
    and wait for all runs.

    The backfills are created while the DAGs are still paused (the scheduler leaves a paused
    DAG's runs alone), then the DAGs are unpaused: on SQLite this keeps the API's inserts and
    the scheduler's updates of the same rows apart.
    """
    for dag_id in dag_ids:
        backfill = airflow.create_backfill(dag_id, days[0], days[-1], dag_run_conf=conf)
        covered = (backfill["from_date"][:10], backfill["to_date"][:10])
        if covered != (days[0], days[-1]):
            raise RuntimeError(
                f"{dag_id}: backfill {backfill['id']} covers {covered[0]}.."
                f"{covered[1]}, not {days[0]}..{days[-1]}"
            )
        log(f"{dag_id}: backfill {backfill['id']} for {days[0]}..{days[-1]} created")
    for dag_id in dag_ids:
        airflow.unpause(dag_id)
    return {
        dag_id: wait_for_runs(airflow, dag_id, days, timeout_minutes, on_poll) for dag_id in dag_ids
    }


def prune_unplanned_runs(airflow: AirflowClient, dag_ids: tuple[str, ...], planned: set[str]):
    """Mark failed, with a note, the scheduled runs outside the generated dates.

    Unpausing a DAG makes the scheduler create a run for its latest interval (yesterday for
    the daily DAGs), for which ``make run`` generated no data: left alone it would fail on the
    missing landing folder, and its downstream runs would wait on it. Deleting it does not
    help: the scheduler creates it again.
    """
    for dag_id in dag_ids:
        for run in airflow.all_dag_runs(dag_id):
            day = (run.get("logical_date") or "")[:10]
            unplanned = run["run_type"] == "scheduled" and day not in planned
            if unplanned and run["state"] in ("queued", "running"):
                note = "Stopped by make run: it generated no data for this date."
                airflow.fail_dag_run(dag_id, run["dag_run_id"], note)
                log(f"{dag_id}: stopped scheduled run {run['dag_run_id']} (no data generated)")


def wait_for_run(airflow: AirflowClient, dag_id: str, run_id: str, timeout_minutes: int) -> dict:
    deadline = time.monotonic() + timeout_minutes * 60
    state = None
    while True:
        run = airflow.dag_run(dag_id, run_id)
        if run and run["state"] != state:
            state = run["state"]
            log(f"{dag_id}: run {run_id} {state}")
        if run and state in TERMINAL_RUN_STATES:
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"{dag_id}: run {run_id} not finished after {timeout_minutes} min")
        time.sleep(5)


def generate_events(workspace, story: Story, events: Events) -> None:
    run_job(
        workspace,
        "generate_events",
        "spark_jobs/generate_events.py",
        [
            "--start-date",
            story.days[0],
            "--days",
            str(len(story.days)),
            "--landing-dir",
            LOCAL.landing_dir,
            "--seed",
            str(events.seed),
            "--events-per-day",
            str(events.per_day),
            "--drift-scenario",
            events.drift_scenario,
            "--drift-start",
            story.drift_start.isoformat(),
        ],
    )


def load_history(workspace, story: Story) -> None:
    history = story.history
    run_job(
        workspace,
        "load_history",
        "spark_jobs/load_history.py",
        [
            "--start-ds",
            history[0],
            "--end-ds",
            history[-1],
            "--catalog",
            LOCAL.catalog,
            "--landing-dir",
            LOCAL.landing_dir,
            "--label-horizon-days",
            str(LOCAL.label_horizon_days),
        ],
    )


def run_daily_dags(outcome: Outcome, story: Story, timeout_minutes: int, clock: StageClock) -> None:
    """The first champion, before the drift (the chain of its date, then the training); then
    the daily chain for the DAGs' days and the serving of the last one."""
    airflow, planned = outcome.airflow, set(story.days)

    def backfill(dag_ids: tuple[str, ...], dates: list[str]) -> None:
        prune = functools.partial(prune_unplanned_runs, airflow, dag_ids, planned)
        for dag_id, runs in run_backfills(airflow, dag_ids, dates, timeout_minutes, prune).items():
            outcome.runs[dag_id] = [*outcome.runs.get(dag_id, []), *runs]

    seed = story.seed_as_of.isoformat()
    backfill(PIPELINES, [seed])
    backfill(("model_training",), [seed])
    clock.done("first training (chain + training)")
    backfill(PIPELINES, story.airflow_days)
    backfill(("model_serving",), story.days[-1:])
    clock.done(f"daily chain ({len(story.airflow_days)} days) + serving")


def check_drift(outcome: Outcome, story: Story, timeout_minutes: int) -> None:
    """The month's drift check, and the retraining it triggers when it finds the drift."""
    airflow, month = outcome.airflow, story.month_start.isoformat()
    outcome.runs |= run_backfills(
        airflow,
        (DRIFT_PIPELINE,),
        [month],
        timeout_minutes,
        functools.partial(prune_unplanned_runs, airflow, (DRIFT_PIPELINE,), {month}),
        # A backfill reports drift but retrains only when it asks: this one is the story's check.
        conf={"retrain": True},
    )
    [drift_run] = outcome.runs[DRIFT_PIPELINE]
    outcome.decision = (
        airflow.xcom(DRIFT_PIPELINE, drift_run["dag_run_id"], "check_drift", "drift_decision") or {}
    )
    decision = outcome.decision
    log(f"drift decision: {decision.get('decision')} ({decision.get('detail')})")
    if decision.get("decision") == "trigger_retraining":
        retraining = wait_for_run(airflow, "model_training", f"drift__{month}", timeout_minutes)
        outcome.runs["model_training"] = [*outcome.runs["model_training"], retraining]


def monitor_pipeline(outcome: Outcome, story: Story, started: str, timeout_minutes: int) -> None:
    """The pipeline_monitoring DAG of the story's last day, over the story's own window: from
    when it was first told (``started``, kept across resumes) to now, so that every Databricks
    run of the story is collected into monitoring.job_runs and in the operations report.

    A run of the DAG left by an earlier telling collected a window that ended then: it is
    deleted first, so the backfill collects the whole story again (the MERGE by run id keeps
    one row per run).
    """
    airflow, day = outcome.airflow, story.days[-1]
    for run in airflow.dag_runs(MONITORING_PIPELINE, day, day):
        airflow.delete_dag_run(MONITORING_PIPELINE, run["dag_run_id"])
        log(f"{MONITORING_PIPELINE}: deleted the earlier run {run['dag_run_id']} to collect again")
    window = {"start_time": started, "end_time": datetime.now(UTC).isoformat(timespec="seconds")}
    log(f"{MONITORING_PIPELINE}: collecting the runs started {window['start_time']} .. now")
    outcome.runs |= run_backfills(
        airflow,
        (MONITORING_PIPELINE,),
        [day],
        timeout_minutes,
        functools.partial(prune_unplanned_runs, airflow, (MONITORING_PIPELINE,), {day}),
        conf=window,
    )


def read_operations(workspace, outcome: Outcome, story: Story) -> None:
    """The operations report's summary, and monitoring.job_runs checked run by run against
    the workspace's runs/get (nothing found: an earlier story without pipeline monitoring)."""
    from databricks.sdk.errors import NotFound

    path = f"{LOCAL.reports_dir}/{MONITORING_PIPELINE}/{story.days[-1]}/operations.json"
    try:
        outcome.operations = json.loads(workspace.files.download(path).contents.read())
    except NotFound:
        log(f"no operations report at {path}: the pipeline was not monitored in this story")
        return
    rows_path = f"{LOCAL.volume_root}/system/job_runs.json"
    run_job(
        workspace,
        "export_job_runs",
        "local/jobs/export_job_runs.py",
        ["--catalog", LOCAL.catalog, "--output", rows_path],
    )
    rows = json.loads(workspace.files.download(rows_path).contents.read())
    answers = {row["run_id"]: workspace.jobs.get_run(row["run_id"]).as_dict() for row in rows}
    outcome.job_runs = {"rows": len(rows), "mismatches": job_run_mismatches(rows, answers)}


# A column of monitoring.job_runs and the runs/get field (of the run, or its tasks' sum) it holds.
RUNS_GET_FIGURES = (
    ("queue_seconds", "queue_duration", False),
    ("setup_seconds", "setup_duration", True),
    ("execution_seconds", "execution_duration", True),
    ("cleanup_seconds", "cleanup_duration", True),
    ("total_seconds", "run_duration", False),
)


IN_FLIGHT = frozenset({"QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED"})


def job_run_mismatches(rows: list[dict], answers: dict[int, dict]) -> list[str]:
    """Where a row of monitoring.job_runs differs from what runs/get answers for its run now
    (its state, its phases in seconds); one line each, empty when every figure matches. A run
    in flight when it was collected has moved on since: it is not compared."""
    problems = []
    for row in rows:
        if row["life_cycle_state"] in IN_FLIGHT:
            continue
        run = answers[row["run_id"]]
        state = run.get("state") or {}
        expected = {
            "life_cycle_state": state.get("life_cycle_state"),
            "result_state": state.get("result_state"),
        }
        for column, field_name, on_tasks in RUNS_GET_FIGURES:
            value = run.get(field_name) or 0
            if on_tasks and run.get("tasks"):
                value = sum(t.get(field_name) or 0 for t in run["tasks"]) or value
            expected[column] = value / 1000
        for column, want in expected.items():
            if row[column] != want:
                problems.append(f"run {row['run_id']}: {column} {row[column]} != runs/get {want}")
    return problems


def read_results(workspace, outcome: Outcome, story: Story) -> None:
    """The tables' summary (a job on the workspace) and the drift check's report."""
    summary_path = f"{LOCAL.volume_root}/system/run_summary.json"
    run_job(
        workspace,
        "table_summary",
        "local/jobs/table_summary.py",
        ["--catalog", LOCAL.catalog, "--output", summary_path],
    )
    outcome.tables = json.loads(workspace.files.download(summary_path).contents.read())
    month = story.month_start.isoformat()
    outcome.drift = json.loads(
        workspace.files.download(
            f"{LOCAL.reports_dir}/drift_detection/{month}/feature_drift.json"
        ).contents.read()
    )


def recall(story: Story, config: StackConfig, clock: StageClock) -> Outcome:
    """The outcome of the same story told earlier on this state, read back without rerunning
    anything: its DAG runs, the drift decision and the tables as they stand."""
    up(config)
    clock.done("stack up")
    env = config.client_env()
    airflow = AirflowClient(
        env["AIRFLOW_API_URL"], env["AIRFLOW_USERNAME"], env["AIRFLOW_PASSWORD"]
    )
    outcome = Outcome(airflow)
    month = story.month_start.isoformat()
    planned = {
        **{dag_id: {story.seed_as_of.isoformat(), *story.airflow_days} for dag_id in PIPELINES},
        "model_training": {story.seed_as_of.isoformat()},
        "model_serving": {story.days[-1]},
        DRIFT_PIPELINE: {month},
        MONITORING_PIPELINE: {story.days[-1]},
    }
    for dag_id, dates in planned.items():
        outcome.runs[dag_id] = [
            r
            for r in airflow.all_dag_runs(dag_id)
            if (r.get("logical_date") or "")[:10] in dates and r["run_type"] != "manual"
        ]
    retraining = airflow.dag_run("model_training", f"drift__{month}")
    if retraining:
        outcome.runs["model_training"].append(retraining)
    drift_runs = outcome.runs[DRIFT_PIPELINE]
    if drift_runs:
        outcome.decision = (
            airflow.xcom(
                DRIFT_PIPELINE, drift_runs[-1]["dag_run_id"], "check_drift", "drift_decision"
            )
            or {}
        )
    workspace = workspace_client(config)
    read_results(workspace, outcome, story)
    read_operations(workspace, outcome, story)
    clock.done("summary")
    return outcome


def tell(
    story: Story,
    config: StackConfig,
    events: Events,
    timeout_minutes: int,
    clock: StageClock,
    started: str | None = None,
) -> Outcome:
    """Run every stage of the story; raise ``RuntimeError`` when one fails. ``started``: when
    the story was first told (ISO 8601), where its pipeline monitoring's window begins."""
    started = started or datetime.now(UTC).isoformat(timespec="seconds")
    log("starting the local stack")
    up(config)
    clock.done("stack up")
    workspace = workspace_client(config)
    generate_events(workspace, story, events)
    clock.done("generate events")
    load_history(workspace, story)
    clock.done(f"history load ({len(story.history)} days, one job)")
    env = config.client_env()
    airflow = AirflowClient(
        env["AIRFLOW_API_URL"], env["AIRFLOW_USERNAME"], env["AIRFLOW_PASSWORD"]
    )
    airflow.wait_for_dags(PIPELINES + ML_PIPELINES + (DRIFT_PIPELINE, MONITORING_PIPELINE))
    outcome = Outcome(airflow)
    run_daily_dags(outcome, story, timeout_minutes, clock)
    check_drift(outcome, story, timeout_minutes)
    clock.done("drift check and retraining")
    monitor_pipeline(outcome, story, started, timeout_minutes)
    clock.done("pipeline monitoring")
    read_results(workspace, outcome, story)
    read_operations(workspace, outcome, story)
    clock.done("summary")
    return outcome
