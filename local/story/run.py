"""``make run``: the local end-to-end run of the whole system, on embedded defaults.

The story, through the real Airflow scheduler, the local workspace, MLflow and Azurite:

1. starts the local stack (``tools.stack up``; reused when already running);
2. generates synthetic REES46 click-stream for a drift month (default: the last full calendar
   month) plus ``--warmup-days`` before it, with a drift scenario (default
   ``behaviour_change``: shoppers put fewer products in the cart and buy less) starting on a
   known day of the month;
3. loads the history before the month's last ``--airflow-days`` days in one job
   (``spark_jobs/load_history.py``: the same ingest, silver and feature code the daily jobs
   run), as a first load on Databricks would;
4. backfills the daily chain (data quality with Great Expectations, offline features, online
   features) for the seed date, as from the UI, and trains the first champion as of that date,
   *before* the drift (``model_training``);
5. backfills the daily chain for the month's last ``--airflow-days`` days, with the quality
   reports uploaded to Blob, and scores the month's last day with the champion
   (``model_serving``);
6. runs the monthly ``drift_detection`` for the month: Evidently compares the month with the
   champion's training window, the branching sensor finds the drift and triggers
   ``model_training`` with ``reason=drift``, which trains on drifted data and applies the
   promotion rule;
7. prints a summary: runs per DAG, tables, data quality, drift, both trainings and their
   decisions, the links to the reports in Azurite, and the time of each stage.

Unpausing a DAG makes Airflow schedule its latest interval too (yesterday, or last month);
those runs have no generated data, so they are stopped as they appear (and said so). The
stack stays up afterwards so the results can be explored; ``make down`` stops it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ecom_airflow.config import LOCAL
from local.stack.airflow_client import TERMINAL_RUN_STATES, AirflowClient
from local.stack.services import StackConfig, up

# DAGs of the daily chain, in dependency order. All their backfills are created at once: each
# DAG's runs wait (deferrable sensor) for the upstream DAG's run of the same date.
PIPELINES = ("data_quality_validation", "offline_feature_table", "online_feature_table")
# Trained and served once, as of the last day: a model needs weeks of labelled history, and a
# backfill of serving would score past dates with today's champion.
ML_PIPELINES = ("model_training", "model_serving")
DRIFT_PIPELINE = "drift_detection"


def log(message: str) -> None:
    print(f"[run] {message}", flush=True)


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
) -> dict[str, list[dict]]:
    """Backfill ``days`` on every DAG of the chain, as from the UI, and wait for all runs.

    The backfills are created while the DAGs are still paused (the scheduler leaves a paused
    DAG's runs alone), then the DAGs are unpaused: on SQLite this keeps the API's inserts and
    the scheduler's updates of the same rows apart.
    """
    for dag_id in dag_ids:
        backfill = airflow.create_backfill(dag_id, days[0], days[-1])
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


def model_summary(config: StackConfig) -> dict[str, Any]:
    """From MLflow: the latest training's candidates, comparison and decision, and the
    headline figures of every training (oldest first)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.mlflow_url)
    experiment = client.get_experiment_by_name(LOCAL.mlflow_experiment)
    if experiment is None:
        return {}
    parents = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.decision != ''",
        order_by=["attributes.start_time DESC"],
    )
    if not parents:
        return {}
    parent = parents[0]
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    recommender = client.get_experiment_by_name(LOCAL.recommender_experiment)
    als = (
        client.search_runs(
            [recommender.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
        )
        if recommender
        else []
    )
    return {
        "run_id": parent.info.run_id,
        "metrics": parent.data.metrics,
        "tags": parent.data.tags,
        "trainings": [{"metrics": r.data.metrics, "tags": r.data.tags} for r in reversed(parents)],
        "candidates": {c.info.run_name: c.data.metrics for c in children},
        "recommender": {"metrics": als[0].data.metrics, "tags": als[0].data.tags} if als else {},
    }


def print_model_summary(summary: dict[str, Any]) -> None:
    if not summary:
        print("\nno model training found in MLflow")
        return
    tags, metrics = summary["tags"], summary["metrics"]
    columns = (
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier_score",
        "calibration_error",
        "lift_top_decile",
    )
    print(
        f"\npropensity model, as of {tags.get('as_of')} (train {tags.get('train_window_start')}.."
        f"{tags.get('train_window_end')}, validation {tags.get('validation_window_start')}.."
        f"{tags.get('validation_window_end')}):"
    )
    print(f"  {'candidate':22s}" + "".join(f"{c:>18s}" for c in columns))
    for name, values in sorted(summary["candidates"].items()):
        print(f"  {name:22s}" + "".join(f"{values.get(c, float('nan')):18.4f}" for c in columns))
    for key, label in (
        ("baseline_roc_auc", "recency baseline ROC AUC"),
        ("champion_roc_auc", "previous champion ROC AUC"),
        ("oracle_roc_auc", "oracle (true propensity) ROC AUC"),
        ("lift_capture", "share of the oracle's lift captured (target >= 0.9)"),
    ):
        if key in metrics:
            print(f"  {label:52s} {metrics[key]:.4f}")
    print(f"  decision: {tags.get('decision')}: {tags.get('decision_reason')}")
    print(f"  champion: v{tags.get('champion_after')} of {tags.get('model_name')}")
    print_trainings(summary.get("trainings", []))
    als = summary.get("recommender")
    if als:
        m = als["metrics"]
        print(
            f"\nALS recommender: precision@10 {m.get('precision_at_10', float('nan')):.4f}, "
            f"recall@10 {m.get('recall_at_10', float('nan')):.4f}; popularity baseline "
            f"precision@10 {m.get('popularity_precision_at_10', float('nan')):.4f}, "
            f"recall@10 {m.get('popularity_recall_at_10', float('nan')):.4f}"
        )
        print(f"  decision: {als['tags'].get('decision')}: {als['tags'].get('decision_reason')}")


TRAINING_COLUMNS = (
    ("challenger_roc_auc", "challenger"),
    ("champion_roc_auc", "champion before"),
    ("baseline_roc_auc", "recency"),
    ("oracle_roc_auc", "oracle"),
    ("lift_capture", "lift capture"),
)


def print_trainings(trainings: list[dict[str, Any]]) -> None:
    """One line per training of the run: ROC AUCs on its validation rows and its decision.

    ``lift capture`` is the serving model's after the decision (target >= 0.9).
    """
    if not trainings:
        return
    print(f"\n  every training ({len(trainings)}), ROC AUC on its own validation rows:")
    header = "".join(f"{label:>16s}" for _, label in TRAINING_COLUMNS)
    print(f"  {'as of':10s} {'reason':9s}{header}  decision")
    for training in trainings:
        tags, metrics = training["tags"], training["metrics"]
        cells = "".join(
            f"{metrics[key]:16.4f}" if key in metrics else f"{'-':>16s}"
            for key, _ in TRAINING_COLUMNS
        )
        print(
            f"  {tags.get('as_of', '?'):10s} {tags.get('reason', '?'):9s}{cells}  "
            f"{tags.get('decision')} (v{tags.get('challenger_version')}; champion "
            f"v{tags.get('champion_after')})"
        )


def quality_bars(summary: dict[str, Any]) -> dict[str, float]:
    """The quality bars, from the latest training and recommender run: the serving model's
    ROC AUC next to the oracle's and the recency baseline's, the share of the oracle's lift it
    captures, and the serving ALS model's precision@10 next to popularity's."""
    metrics = summary.get("metrics", {})
    recommender = summary.get("recommender", {})
    als = recommender.get("metrics", {})
    # The serving recommender's figure: the challenger's when it won, else the champion's on
    # the same evaluation window.
    promoted = recommender.get("tags", {}).get("decision") == "promoted"
    wanted = {
        "champion_roc_auc": metrics.get("champion_after_roc_auc"),
        "oracle_roc_auc": metrics.get("oracle_roc_auc"),
        "recency_roc_auc": metrics.get("baseline_roc_auc"),
        "lift_capture": metrics.get("lift_capture"),
        "als_precision_at_10": als.get(
            "precision_at_10" if promoted else "champion_precision_at_10"
        ),
        "popularity_precision_at_10": als.get("popularity_precision_at_10"),
    }
    return {k: v for k, v in wanted.items() if v is not None}


@dataclass(frozen=True)
class Check:
    """One step of the story ``make run`` tells, and whether it happened."""

    name: str
    ok: bool
    detail: str
    required: bool = True  # a missed required step fails ``make run``


def story_checks(decision: dict[str, Any], trainings: list[dict[str, Any]]) -> list[Check]:
    """Did the run tell the story it set out to (drift found, retraining, a new champion)?

    Drift detection and the retraining it triggers are the system's job on the embedded
    scenario, so missing either fails the run. Whether the retrained model is promoted is the
    promotion rule's call, and the quality bar is a measurement: both are reported, not
    enforced.
    """
    first = trainings[0] if trainings else None
    drift_runs = [t for t in trainings if t["tags"].get("reason") == "drift"]
    retrained = drift_runs[-1] if drift_runs else None
    checks = [
        Check(
            "a first champion before the drift",
            first is not None and first["tags"].get("decision") == "promoted",
            f"v{first['tags'].get('champion_after')} as of {first['tags'].get('as_of')}"
            if first
            else "no training in MLflow",
        ),
        Check(
            "the drift check found the drift and chose retraining",
            decision.get("decision") == "trigger_retraining",
            f"{decision.get('decision')}: {decision.get('detail')}",
        ),
        Check(
            "a retraining with reason=drift ran",
            retrained is not None,
            f"as of {retrained['tags'].get('as_of')}" if retrained else "none in MLflow",
        ),
    ]
    if retrained is not None:
        tags = retrained["tags"]
        checks.append(
            Check(
                "the retrained model became champion",
                tags.get("decision") == "promoted",
                f"{tags.get('decision')}: {tags.get('decision_reason')}",
                required=False,
            )
        )
    served = (retrained or first or {}).get("metrics", {})
    if "lift_capture" in served:
        checks.append(
            Check(
                "the champion captures >= 0.9 of the oracle's lift",
                served["lift_capture"] >= 0.9,
                f"{served['lift_capture']:.2f}",
                required=False,
            )
        )
    return checks


def print_story(checks: list[Check]) -> bool:
    """Print the checks; True when every required one holds."""
    print("\nthe story:")
    for check in checks:
        mark = "ok" if check.ok else ("MISSED" if check.required else "no")
        print(f"  [{mark:6s}] {check.name}: {check.detail}")
    return all(c.ok for c in checks if c.required)


def print_summary(
    runs: dict[str, list[dict]], tables: dict[str, Any], config: StackConfig, seconds: float
) -> None:
    print("\n=== Summary ===")
    print(f"{'DAG':32s} {'runs':>5s} {'success':>8s} {'failed':>7s}")
    for dag_id, dag_runs in runs.items():
        ok = sum(r["state"] == "success" for r in dag_runs)
        failed = sum(r["state"] == "failed" for r in dag_runs)
        print(f"{dag_id:32s} {len(dag_runs):5d} {ok:8d} {failed:7d}")
    print(f"\n{'table':40s} {'rows':>10s} {'version':>8s}")
    for table in tables["tables"]:
        print(f"{table['name']:40s} {table['rows']:10d} {table['version']:8d}")
    reasons = tables.get("quarantine_reasons", {})
    if reasons:
        print("\nquarantined rows by reason:")
        for reason, count in sorted(reasons.items()):
            print(f"  {reason:30s} {count:8d}")
    features = tables.get("features", {})
    per_date = features.get("rows_per_feature_date", {})
    if per_date:
        dates = sorted(per_date)
        print(
            f"\noffline features: {len(dates)} feature dates {dates[0]}..{dates[-1]}, "
            f"{per_date[dates[-1]]} users on the latest"
        )
    labels = features.get("labels")
    if labels:
        print(
            f"labels: {labels['rows']} rows over {labels['feature_dates']} closed feature dates, "
            f"{labels['positive_rate']:.1%} purchased within the horizon"
        )
    env = config.client_env()
    print(
        "\nWhere to look:\n"
        f"  Airflow UI   {env['AIRFLOW_API_URL']} (user {env['AIRFLOW_USERNAME']}, "
        f"password {env['AIRFLOW_PASSWORD']})\n"
        f"  Job runs     {env['DATABRICKS_HOST']}/jobs/runs\n"
        f"  MLflow       {env['MLFLOW_TRACKING_URI']}\n"
        f"  Logs         {config.logs}\n"
        f"  Stop         make down\n"
        f"\nTotal: {seconds / 60:.1f} minutes"
    )


def print_quality_summary(tables: dict[str, Any]) -> None:
    quality = tables.get("data_quality")
    if not quality:
        print("\nno data quality results found")
        return
    print(f"\ndata quality (Great Expectations), {quality['dates']} dates:")
    print(
        f"  {'suite':18s} {'evaluated':>10s} {'passed':>8s} {'blocking failed':>16s} "
        f"{'warnings':>9s}"
    )
    for suite, c in sorted(quality["by_suite"].items()):
        print(
            f"  {suite:18s} {c['evaluated']:10d} {c['passed']:8d} {c['blocking_failed']:16d} "
            f"{c['warning_failed']:9d}"
        )
    for failure in quality.get("failures", []):
        column = failure["column"] or "-"
        print(
            f"  {failure['ds']} {failure['severity']:8s} {failure['suite']}: "
            f"{failure['expectation']} ({column}): {failure['observed']}"
        )


def print_drift_summary(drift: dict[str, Any], decision: dict[str, Any]) -> None:
    reference = drift.get("reference", {})
    share = drift.get("drift_share")
    print(
        f"\ndrift (Evidently), {drift['period_start']}..{drift['period_end']} against the "
        f"champion's training window {reference.get('start')}..{reference.get('end')} "
        f"(v{reference.get('model_version')}):"
    )
    print(
        f"  status {drift['status']}: drift share "
        f"{'n/a' if share is None else f'{share:.2f}'} (threshold {drift['threshold']}), "
        f"{len(drift.get('drifted_columns', []))} of {len(drift.get('columns', {}))} columns, "
        f"rows {reference.get('rows')} reference / {drift.get('current', {}).get('rows')} current"
    )
    drifted = drift.get("drifted_columns", [])
    if drifted:
        print(f"  drifted: {', '.join(drifted)}")
    scores = drift.get("scores", {})
    if scores:
        print(f"  scores: {scores.get('note') or scores}")
    print(f"  sensor decision: {decision.get('decision')} ({decision.get('detail')})")


def print_report_links(airflow: AirflowClient, runs: dict[str, list[dict]]) -> None:
    """The *Report* links (SAS URLs into Azurite) of the latest run of each report task."""
    tasks = {
        "data_quality_validation": "upload_bronze_events_report",
        "offline_feature_table": "upload_features_report",
        DRIFT_PIPELINE: "upload_drift_report",
    }
    print("\nreports in Blob (Azurite; read-only links valid for 7 days):")
    for dag_id, task_id in tasks.items():
        finished = [r for r in runs.get(dag_id, []) if r["state"] in TERMINAL_RUN_STATES]
        if not finished:
            continue
        latest = max(finished, key=lambda r: r["logical_date"] or "")
        link = airflow.xcom(dag_id, latest["dag_run_id"], task_id, "report_link")
        print(f"  {dag_id} [{latest['logical_date'][:10]}]: {link or 'not uploaded'}")


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
        cls, month: str | None, warmup_days: int, drift_day: int, today: date, airflow_days: int
    ) -> Story:
        if month:
            start = date.fromisoformat(f"{month}-01")
        else:
            start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        if end >= today:
            raise ValueError(f"--month {start:%Y-%m} has not ended yet: pick a past month")
        if not 1 <= drift_day <= end.day:
            raise ValueError(f"--drift-day must be a day of {start:%Y-%m} (1..{end.day})")
        first = start - timedelta(days=warmup_days)
        days = [(first + timedelta(days=i)).isoformat() for i in range((end - first).days + 1)]
        # The first training needs its windows inside the history: as of the earliest such day.
        history = 2 * LOCAL.label_horizon_days + LOCAL.validation_days + LOCAL.train_days - 1
        seed_as_of = first + timedelta(days=history)
        if not 1 <= airflow_days <= end.day:
            raise ValueError(f"--airflow-days must be 1..{end.day} (days of {start:%Y-%m})")
        if seed_as_of.isoformat() >= days[-airflow_days]:
            raise ValueError(
                f"{len(days)} days are too few to train before the DAGs' last {airflow_days} "
                "days: raise --warmup-days or lower --airflow-days"
            )
        return cls(
            start,
            end,
            days,
            start + timedelta(days=drift_day - 1),
            seed_as_of,
            days[-airflow_days:],
        )


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--month", help="drift month YYYY-MM (default: the last full month)")
    parser.add_argument("--warmup-days", type=int, default=14, help="history before the month")
    parser.add_argument("--drift-scenario", default="behaviour_change")
    parser.add_argument("--drift-day", type=int, default=8, help="first drifted day of the month")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--events-per-day", type=int, default=20000)
    parser.add_argument(
        "--airflow-days",
        type=int,
        default=2,
        help="the month's last days run by the daily DAGs (the rest is loaded in one job)",
    )
    parser.add_argument("--timeout-minutes", type=int, default=90)
    args = parser.parse_args(argv)
    if args.warmup_days < 0:
        parser.error("--warmup-days must be at least 0")
    try:
        story = Story.build(
            args.month, args.warmup_days, args.drift_day, date.today(), args.airflow_days
        )
    except ValueError as error:
        parser.error(str(error))

    started = time.monotonic()
    days = story.days
    config = StackConfig.from_env()
    log(
        f"history {days[0]}..{days[-1]} ({len(days)} days, {args.events_per_day} events/day; "
        f"the DAGs run {story.airflow_days[0]}..{days[-1]}); "
        f"drift '{args.drift_scenario}' from {story.drift_start}; first champion as of "
        f"{story.seed_as_of}; drift check of {story.month_start:%Y-%m}"
    )
    stages: dict[str, float] = {}

    def stage(name: str, since: float) -> float:
        now = time.monotonic()
        stages[name] = now - since
        log(f"stage '{name}' done in {stages[name] / 60:.1f} min")
        return now

    try:
        log("starting the local stack")
        up(config)
        mark = stage("stack up", started)
        workspace = workspace_client(config)
        run_job(
            workspace,
            "generate_events",
            "spark_jobs/generate_events.py",
            [
                "--start-date",
                days[0],
                "--days",
                str(len(days)),
                "--landing-dir",
                LOCAL.landing_dir,
                "--seed",
                str(args.seed),
                "--events-per-day",
                str(args.events_per_day),
                "--drift-scenario",
                args.drift_scenario,
                "--drift-start",
                story.drift_start.isoformat(),
            ],
        )
        mark = stage("generate events", mark)
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
        mark = stage(f"history load ({len(history)} days, one job)", mark)
        env = config.client_env()
        airflow = AirflowClient(
            env["AIRFLOW_API_URL"], env["AIRFLOW_USERNAME"], env["AIRFLOW_PASSWORD"]
        )
        airflow.wait_for_dags(PIPELINES + ML_PIPELINES + (DRIFT_PIPELINE,))
        planned = set(days)
        all_runs: dict[str, list[dict]] = {}

        def backfill(dag_ids: tuple[str, ...], dates: list[str]) -> None:
            prune = functools.partial(prune_unplanned_runs, airflow, dag_ids, planned)
            for dag_id, runs in run_backfills(
                airflow, dag_ids, dates, args.timeout_minutes, prune
            ).items():
                all_runs[dag_id] = [*all_runs.get(dag_id, []), *runs]

        # The first champion, before the drift: the chain of its date, then the training.
        seed = story.seed_as_of.isoformat()
        backfill(PIPELINES, [seed])
        backfill(("model_training",), [seed])
        mark = stage("first training (chain + training)", mark)
        backfill(PIPELINES, story.airflow_days)
        backfill(("model_serving",), days[-1:])
        mark = stage(f"daily chain ({len(story.airflow_days)} days) + serving", mark)
        month = story.month_start.isoformat()
        all_runs |= run_backfills(
            airflow,
            (DRIFT_PIPELINE,),
            [month],
            args.timeout_minutes,
            functools.partial(prune_unplanned_runs, airflow, (DRIFT_PIPELINE,), {month}),
        )
        [drift_run] = all_runs[DRIFT_PIPELINE]
        decision = (
            airflow.xcom(DRIFT_PIPELINE, drift_run["dag_run_id"], "check_drift", "drift_decision")
            or {}
        )
        log(f"drift decision: {decision.get('decision')} ({decision.get('detail')})")
        if decision.get("decision") == "trigger_retraining":
            retraining = wait_for_run(
                airflow, "model_training", f"drift__{month}", args.timeout_minutes
            )
            all_runs["model_training"] = [*all_runs["model_training"], retraining]
        mark = stage("drift check and retraining", mark)
        summary_path = f"{LOCAL.volume_root}/system/run_summary.json"
        run_job(
            workspace,
            "table_summary",
            "local/jobs/table_summary.py",
            ["--catalog", LOCAL.catalog, "--output", summary_path],
        )
        tables = json.loads(workspace.files.download(summary_path).contents.read())
        drift = json.loads(
            workspace.files.download(
                f"{LOCAL.reports_dir}/drift_detection/{month}/feature_drift.json"
            ).contents.read()
        )
        stage("summary", mark)
    except RuntimeError as error:
        print(f"[run] error: {error}", file=sys.stderr)
        return 1
    print_summary(all_runs, tables, config, time.monotonic() - started)
    print_quality_summary(tables)
    print_drift_summary(drift, decision)
    models = model_summary(config)
    print_model_summary(models)
    print_report_links(airflow, all_runs)
    told = print_story(story_checks(decision, models.get("trainings", [])))
    total = time.monotonic() - started
    print("\nTime by stage:")
    for name, seconds in stages.items():
        print(f"  {name:40s} {seconds / 60:6.1f} min")
    print(f"  {'total':40s} {total / 60:6.1f} min")
    # Read by the system-run benchmark (bench/system_run.py).
    (config.state / "run_stages.json").write_text(
        json.dumps(
            {"stages": stages, "total": total, "days": len(days), "quality": quality_bars(models)},
            indent=2,
        )
        + "\n"
    )
    failed = sum(r["state"] != "success" for runs in all_runs.values() for r in runs)
    if failed:
        print(f"\n{failed} DAG run(s) did not succeed (see the table above)", file=sys.stderr)
    if not told:
        print(
            "\nthe run did not tell its whole story: a step marked MISSED above did not "
            "happen (see the drift and model sections)",
            file=sys.stderr,
        )
    return 1 if failed or not told else 0


if __name__ == "__main__":
    sys.exit(main())
