"""``make run``: the local end-to-end run of the system, on embedded defaults.

1. starts the local stack (``tools.stack up``; reused when already running),
2. generates synthetic REES46 click-stream for a range of days into the landing Volume, as a
   job on the local workspace,
3. runs the pipelines for those days through the real Airflow scheduler (an Airflow backfill
   created through the REST API, exactly as from the UI), with progress output,
4. prints a summary: runs per DAG and state, row counts and Delta versions per table,
   quarantined rows by reason, and where to look.

The stack stays up afterwards so the results can be explored; ``make down`` stops it.
By default the days are the ``--days`` days before today (UTC), so the scheduled run that
Airflow creates for yesterday when the DAG is unpaused finds its data too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from typing import Any

from ecom_airflow.config import LOCAL
from tools.airflow_api import TERMINAL_RUN_STATES, AirflowClient
from tools.stack import StackConfig, up

# DAGs of the daily chain, in dependency order. All their backfills are created at once: each
# DAG's runs wait (deferrable sensor) for the upstream DAG's run of the same date.
PIPELINES = ("data_quality_validation", "offline_feature_table", "online_feature_table")
# Trained and served once, as of the last day: a model needs weeks of labelled history, and a
# backfill of serving would score past dates with today's champion.
ML_PIPELINES = ("model_training", "model_serving")


def log(message: str) -> None:
    print(f"[run] {message}", flush=True)


def workspace_client(config: StackConfig):
    from databricks.sdk import WorkspaceClient

    env = config.client_env()
    return WorkspaceClient(host=env["DATABRICKS_HOST"], token=env["DATABRICKS_TOKEN"])


def run_job(client, name: str, script: str, parameters: list[str], timeout_minutes: int = 30):
    """Submit ``spark_jobs/<script>`` to the workspace and wait; raise with its error."""
    from databricks.sdk.service.jobs import SparkPythonTask, SubmitTask

    started = time.monotonic()
    waiter = client.jobs.submit(
        run_name=name,
        tasks=[
            SubmitTask(
                task_key="main",
                spark_python_task=SparkPythonTask(
                    python_file=f"spark_jobs/{script}", parameters=parameters
                ),
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
    airflow: AirflowClient, dag_id: str, days: list[str], timeout_minutes: int
) -> list[dict]:
    deadline = time.monotonic() + timeout_minutes * 60
    last_line = ""
    while True:
        runs = airflow.dag_runs(dag_id, days[0], days[-1])
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
    airflow: AirflowClient, dag_ids: tuple[str, ...], days: list[str], timeout_minutes: int
) -> dict[str, list[dict]]:
    """Backfill ``days`` on every DAG of the chain, as from the UI, and wait for all runs.

    The backfills are created while the DAGs are still paused (the scheduler leaves a paused
    DAG's runs alone), then the DAGs are unpaused: on SQLite this keeps the API's inserts and
    the scheduler's updates of the same rows apart.
    """
    for dag_id in dag_ids:
        backfill = airflow.create_backfill(dag_id, days[0], days[-1])
        log(f"{dag_id}: backfill {backfill['id']} for {days[0]}..{days[-1]} created")
    for dag_id in dag_ids:
        airflow.unpause(dag_id)
    return {dag_id: wait_for_runs(airflow, dag_id, days, timeout_minutes) for dag_id in dag_ids}


def model_summary(config: StackConfig) -> dict[str, Any]:
    """The latest training's figures from MLflow: candidates, comparison, decision."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.mlflow_url)
    experiment = client.get_experiment_by_name(LOCAL.mlflow_experiment)
    if experiment is None:
        return {}
    parents = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.decision != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
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
        "candidates": {c.info.run_name: c.data.metrics for c in children},
        "recommender": {"metrics": als[0].data.metrics, "tags": als[0].data.tags} if als else {},
    }


def print_model_summary(summary: dict[str, Any]) -> None:
    if not summary:
        print("\nno model training found in MLflow")
        return
    tags, metrics = summary["tags"], summary["metrics"]
    columns = ("roc_auc", "pr_auc", "log_loss", "brier_score", "calibration_error",
               "lift_top_decile")  # fmt: skip
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__)
    parser.add_argument("--days", type=int, default=28, help="number of days to run (28)")
    parser.add_argument("--start-date", type=date.fromisoformat, help="first day (YYYY-MM-DD)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--events-per-day", type=int, default=20000)
    parser.add_argument("--timeout-minutes", type=int, default=60)
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")

    started = time.monotonic()
    start = args.start_date or (date.today() - timedelta(days=args.days))
    days = [(start + timedelta(days=i)).isoformat() for i in range(args.days)]
    config = StackConfig.from_env()
    try:
        log("starting the local stack")
        up(config)
        workspace = workspace_client(config)
        run_job(
            workspace,
            "generate_events",
            "generate_events.py",
            [
                "--start-date", days[0],
                "--days", str(len(days)),
                "--landing-dir", LOCAL.landing_dir,
                "--seed", str(args.seed),
                "--events-per-day", str(args.events_per_day),
            ],
        )  # fmt: skip
        env = config.client_env()
        airflow = AirflowClient(
            env["AIRFLOW_API_URL"], env["AIRFLOW_USERNAME"], env["AIRFLOW_PASSWORD"]
        )
        airflow.wait_for_dags(PIPELINES + ML_PIPELINES)
        all_runs = run_backfills(airflow, PIPELINES, days, args.timeout_minutes)
        # Training first: serving scores with whatever champion exists when it starts.
        for dag_id in ML_PIPELINES:
            all_runs |= run_backfills(airflow, (dag_id,), days[-1:], args.timeout_minutes)
        summary_path = f"{LOCAL.volume_root}/system/run_summary.json"
        run_job(
            workspace,
            "table_summary",
            "table_summary.py",
            ["--catalog", LOCAL.catalog, "--output", summary_path],
        )
        tables = json.loads(workspace.files.download(summary_path).contents.read())
    except RuntimeError as error:
        print(f"[run] error: {error}", file=sys.stderr)
        return 1
    print_summary(all_runs, tables, config, time.monotonic() - started)
    print_model_summary(model_summary(config))
    failed = sum(r["state"] != "success" for runs in all_runs.values() for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
