"""The summary ``make run`` prints at the end: runs per DAG, tables, data quality, drift, both
trainings and their decisions, the story's checks, the report links and the time of each stage."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from ecom_airflow.config import LOCAL
from local.stack.airflow_client import TERMINAL_RUN_STATES, AirflowClient
from local.stack.config import StackConfig
from local.story.story import (
    DRIFT_PIPELINE,
    MONITORING_PIPELINE,
    Outcome,
    StageClock,
    Story,
)


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
    print(f"  {'candidate':26s}" + "".join(f"{c:>18s}" for c in columns))
    for name, values in sorted(summary["candidates"].items()):
        print(f"  {name:26s}" + "".join(f"{values.get(c, float('nan')):18.4f}" for c in columns))
    for key, label in (
        ("challenger_roc_auc", "challenger ROC AUC"),
        ("baseline_roc_auc", "recency baseline ROC AUC"),
        ("champion_roc_auc", "previous champion ROC AUC"),
        ("oracle_roc_auc", "oracle (the generator's true probability) ROC AUC"),
        ("lift_capture", "share of the oracle's lift captured (target >= 0.9)"),
        ("delta_roc_auc", "ROC AUC gain over the reference (paired)"),
    ):
        if key in metrics:
            print(f"  {label:52s} {metrics[key]:.4f}{_interval(metrics, key)}")
    if "evaluation_rows" in metrics:
        print(
            f"  (95% per-user bootstrap intervals on {metrics['evaluation_rows']:.0f} evaluation "
            f"rows of {metrics.get('evaluation_users', float('nan')):.0f} users)"
        )
    print(f"  decision: {tags.get('decision')}: {tags.get('decision_reason')}")
    print(f"  champion: v{tags.get('champion_after')} of {tags.get('model_name')}")
    print_trainings(summary.get("trainings", []))
    als = summary.get("recommender")
    if als:
        m = als["metrics"]
        nan = float("nan")
        print("\nrecommender, precision@10 / recall@10 on the evaluation window:")
        for label, prefix in (
            ("ALS (challenger)", ""),
            ("global popularity", "popularity_"),
            ("category-aware popularity", "category_popularity_"),
            ("ceiling (the generator's true ranking)", "ceiling_"),
        ):
            if f"{prefix}precision_at_10" in m:
                print(
                    f"  {label:40s} {m[f'{prefix}precision_at_10']:.4f} / "
                    f"{m.get(f'{prefix}recall_at_10', nan):.4f}"
                )
        if "ceiling_capture" in m:
            print(
                "  share of the ceiling's gain over popularity captured: "
                f"{m['ceiling_capture']:.2f}"
            )
        print(f"  decision: {als['tags'].get('decision')}: {als['tags'].get('decision_reason')}")


def _interval(metrics: dict[str, float], key: str) -> str:
    """`` [low, high]`` of ``key`` when the run logged its interval, else nothing."""
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    return "" if low is None or high is None else f"  [{low:.4f}, {high:.4f}]"


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
        "category_popularity_precision_at_10": als.get("category_popularity_precision_at_10"),
        "ceiling_precision_at_10": als.get("ceiling_precision_at_10"),
        "ceiling_capture": als.get("ceiling_capture"),
        "champion_calibration_error": metrics.get(
            "challenger_calibration_error"
            if summary.get("tags", {}).get("decision") == "promoted"
            else "champion_calibration_error"
        ),
    }
    return {k: v for k, v in wanted.items() if v is not None}


@dataclass(frozen=True)
class Check:
    """One step of the story ``make run`` tells, and whether it happened."""

    name: str
    ok: bool
    detail: str
    required: bool = True  # a missed required step fails ``make run``


def story_checks(
    decision: dict[str, Any], trainings: list[dict[str, Any]], scenario: str = "behaviour_change"
) -> list[Check]:
    """Did the run tell the story its scenario predicts, in both directions?

    With drift injected, the drift check must find it and the retraining it triggers must run;
    with none (``--drift-scenario none``), the drift check must find nothing and nothing may be
    retrained. Either miss fails the run: the drift alarm is the system's judgment on a
    scenario whose truth is known. Whether a retrained model is promoted is the promotion
    rule's call, and the quality bar is a measurement: both are reported, not enforced. The
    oracle is an upper bound, so a champion above it (lift capture > 1) fails the run.
    """
    first = trainings[0] if trainings else None
    drift_runs = [t for t in trainings if t["tags"].get("reason") == "drift"]
    retrained = drift_runs[-1] if drift_runs else None
    triggered = decision.get("decision") == "trigger_retraining"
    checks = [
        Check(
            "a first champion before the drift",
            first is not None and first["tags"].get("decision") == "promoted",
            f"v{first['tags'].get('champion_after')} as of {first['tags'].get('as_of')}"
            if first
            else "no training in MLflow",
        ),
    ]
    if scenario == "none":
        checks += [
            Check(
                "with no drift injected, the drift check found none",
                bool(decision) and not triggered,
                f"{decision.get('decision')}: {decision.get('detail')}",
            ),
            Check(
                "with no drift injected, nothing was retrained",
                retrained is None,
                "no reason=drift training in MLflow"
                if retrained is None
                else f"a reason=drift training as of {retrained['tags'].get('as_of')}",
            ),
        ]
    else:
        checks += [
            Check(
                f"the drift check found the injected drift ({scenario}) and chose retraining",
                triggered,
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
        capture = served["lift_capture"]
        checks += [
            Check(
                "the oracle bounds the champion (lift capture <= 1)",
                capture <= 1.0,
                f"{capture:.2f}",
            ),
            Check(
                "the champion captures >= 0.9 of the oracle's lift",
                capture >= 0.9,
                f"{capture:.2f}",
                required=False,
            ),
        ]
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
        # Not the password itself: a terminal's output is often shared or logged.
        f"  Airflow UI   {env['AIRFLOW_API_URL']} (user {env['AIRFLOW_USERNAME']}, "
        f"password: AIRFLOW_PASSWORD in {config.state / 'stack.env'})\n"
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
        MONITORING_PIPELINE: "upload_operations_report",
    }
    print("\nreports in Blob (Azurite; read-only links valid for 7 days):")
    for dag_id, task_id in tasks.items():
        finished = [r for r in runs.get(dag_id, []) if r["state"] in TERMINAL_RUN_STATES]
        if not finished:
            continue
        latest = max(finished, key=lambda r: r["logical_date"] or "")
        link = airflow.xcom(dag_id, latest["dag_run_id"], task_id, "report_link")
        print(f"  {dag_id} [{latest['logical_date'][:10]}]: {link or 'not uploaded'}")


def print_operations_summary(operations: dict[str, Any]) -> None:
    """The Databricks runs of the story from monitoring.job_runs: how many, how long, what they
    would cost (list prices, as if on the dev cluster spec), a day of the chain at 1x and more."""
    if not operations:
        print("\nno operations report: the pipeline was not monitored in this story")
        return
    basis = "; ".join(operations["price_basis"]) or "no price"
    print(
        f"\npipeline monitoring (monitoring.job_runs; costs are estimates from list prices, "
        f"{', '.join(operations['price_tables']) or 'none'}; priced {basis}):"
    )
    print(
        f"  {operations['runs']} Databricks runs of the DAGs ({operations['failed']} failed, "
        f"{operations['retries']} retries), {operations['execution_seconds'] / 60:.1f} min of "
        f"execution, estimated ${operations['estimated_cost_usd']:.2f} "
        f"(${operations['estimated_cost_max_usd']:.2f} at the clusters' maximum size)"
    )
    by_dag: dict[str, list[float]] = {}
    for job in operations["jobs"]:
        figures = by_dag.setdefault(job["dag_id"], [0, 0.0, 0.0])
        figures[0] += job["runs"]
        figures[1] += job["execution_seconds"]
        figures[2] += job["estimated_cost_usd"]
    print(f"  {'DAG':30s} {'runs':>5s} {'execution min':>14s} {'est. cost':>10s}")
    for dag_id, (runs, seconds, cost) in sorted(by_dag.items()):
        print(f"  {dag_id:30s} {runs:5d} {seconds / 60:14.1f} {f'${cost:.2f}':>10s}")
    chain = operations.get("daily_chain")
    if chain:
        costs = ", ".join(f"${v['cost_usd']:.2f} at {k}x" for k, v in chain["at"].items())
        print(
            f"  one day of the daily chain ({chain['logical_date']}, {chain['tasks']} tasks): "
            f"{costs} the volume (execution scaled, cluster start as measured; "
            "python -m local.story.cost for other factors)"
        )
    growing = operations.get("growing") or []
    print(f"  growing jobs: {', '.join(growing) if growing else 'none'}")


def monitoring_checks(operations: dict[str, Any], job_runs: dict[str, Any]) -> list[Check]:
    """monitoring.job_runs holds the story's runs, each as the workspace's runs/get reports it."""
    if not operations:
        return []
    mismatches = job_runs.get("mismatches", [])
    rows = job_runs.get("rows", 0)
    detail = f"{rows} rows compared with runs/get, {len(mismatches)} differ"
    return [
        Check(
            "monitoring.job_runs holds the story's runs, each as runs/get reports it",
            rows > 0 and operations["runs"] > 0 and not mismatches,
            detail + (f" ({'; '.join(mismatches[:3])})" if mismatches else ""),
        )
    ]


def print_timings(stages: dict[str, float], total: float) -> None:
    print("\nTime by stage:")
    for name, seconds in stages.items():
        print(f"  {name:40s} {seconds / 60:6.1f} min")
    print(f"  {'total':40s} {total / 60:6.1f} min")


def report(
    outcome: Outcome,
    story: Story,
    config: StackConfig,
    clock: StageClock,
    started: float,
    scenario: str = "behaviour_change",
) -> int:
    """Print the summary and the time of each stage; the exit code of ``make run``: 1 when a
    DAG run did not succeed or a required step of the story did not happen."""
    runs = outcome.runs
    print_summary(runs, outcome.tables, config, time.monotonic() - started)
    print_quality_summary(outcome.tables)
    print_drift_summary(outcome.drift, outcome.decision)
    models = model_summary(config)
    print_model_summary(models)
    print_operations_summary(outcome.operations)
    print_report_links(outcome.airflow, runs)
    checks = story_checks(outcome.decision, models.get("trainings", []), scenario)
    told = print_story(checks + monitoring_checks(outcome.operations, outcome.job_runs))
    total = time.monotonic() - started
    print_timings(clock.durations, total)
    # Read by the system-run benchmark (bench/system_run.py).
    (config.state / "run_stages.json").write_text(
        json.dumps(
            {
                "stages": clock.durations,
                "total": total,
                "days": len(story.days),
                "quality": quality_bars(models),
            },
            indent=2,
        )
        + "\n"
    )
    failed = sum(r["state"] != "success" for dag_runs in runs.values() for r in dag_runs)
    if failed:
        print(f"\n{failed} DAG run(s) did not succeed (see the table above)", file=sys.stderr)
    if not told:
        print(
            "\nthe run did not tell its whole story: a step marked MISSED above did not "
            "happen (see the drift and model sections)",
            file=sys.stderr,
        )
    return 1 if failed or not told else 0
