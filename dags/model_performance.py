"""
### Model performance (daily)

Measures how the served propensity scores performed once their labels closed: the scores of
`S = ds - label_horizon_days` joined with the labels of `S`, into `monitoring.model_performance`
(ROC AUC, PR AUC, ECE, base rate, mean score, lift at the top decile, counts, model version),
a page in Blob, and a second reason to retrain: `reason=performance`.

`wait_for_offline_feature_table` (ds: closes the labels of S) and `wait_for_model_serving`
(S: the scores) -> `monitor_performance` -> `upload_performance_report` and
`check_performance` -> `trigger_retraining` | `skip_retraining` -> `done`

| | |
|---|---|
| **Schedule** | daily; the run of `ds` measures the score date `ds - 7` (the label horizon) |
| **Waits for** | `offline_feature_table` run of `ds` and `model_serving` run of `ds - 7` (success) |
| **Input** | `gold.propensity_scores` (`score_date = S`), `silver.user_labels` (`feature_date = S`, `horizon_days = 7`), MLflow: the serving version's validation metrics, the last training tagged `reason=performance` |
| **Output** | `monitoring.model_performance` (one row per score date and model version, replaced on a rerun), `reports/model_performance/<ds>/model_performance.html` + `.json` on the reports Volume, the HTML in Blob (`model_performance/<ds>/model_performance.html`, the *Report* link), and a `model_training` run with conf `{"reason": "performance", "as_of": <ds>, "drift_summary": <the summary's path>}` when the scores decayed |
| **Runs on** | Databricks (`spark_jobs/monitor_performance.py`); locally on the local workspace |
| **Owner** | ml-platform |

**The decision.** `check_performance` (a reschedule-mode sensor) reads the JSON summary and
picks `trigger_retraining` when the score date had enough labelled rows
(`performance_min_rows`), its ECE is above `performance_max_ece` or its ROC AUC is below the
serving version's validation ROC AUC by more than `performance_max_auc_drop`, the version is
still the champion, no performance retraining happened within `performance_cooldown` and none
is in flight; otherwise `skip_retraining`. The decision and its reason are in the task log and
the XCom `performance_decision`. Details and why these thresholds:
`docs/performance_monitoring.md`.

Its own DAG rather than a task of `model_serving`: it reads a date a horizon old, so a backfill
or a rerun of it must never re-score (a rerun of `score_users` scores with today's champion),
and a failed measurement must not fail the day's serving.

**What a failure means.**
- `wait_for_model_serving` failed: serving of `ds - 7` failed; rerun it there first (that
  re-scores the date with today's champion, which the rows then name).
- `monitor_performance` failed with "does not exist: run the model_serving DAG first": no score
  was ever written. A date with scores but no label is no failure: the scores are counted as
  unlabelled, the status is `insufficient_data`, and nothing is retrained.
- `upload_performance_report` failed: the message names the container or connection.
- `check_performance` timed out: the summary named in the message was never written.

What every DAG's failures have in common: `docs/runbook.md` in the repository.

**Rerun one date.** Clear `monitor_performance` with its downstream tasks: the score date's
rows are replaced, the page overwritten, and a retraining is not triggered twice (run id
`performance__<ds>`, the in-flight check and the cooldown).

**Backfill a range.** One run per logical date (`docs/runbook.md`, *Backfill a range*), each
measuring its own `ds - 7`; or one run triggered with conf `{"start_ds": ..., "end_ds": ...}`
to measure a range of score dates at once (each must be at least 7 days before the run's `ds`).
Start 7 days after the first served date: an earlier run waits for a `model_serving` run that
does not exist, until `wait_for_model_serving` times out.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import (
    daily_dag,
    databricks_job,
    publish_and_branch,
    report_prefix,
    wait_for_dag,
)
from ecom_plugins import PerformanceBranchSensor

ENV = current_environment()
HORIZON = ENV.label_horizon_days
# The score date whose labels the run of ds closes (a Jinja expression).
SCORE_DATE = f"macros.ds_add(ds, -{HORIZON})"
REPORT = report_prefix("model_performance", "model_performance")
RETRAINING_RUN_ID = "performance__{{ ds }}"

with daily_dag(
    "model_performance",
    doc_md=__doc__,
    tags=["monitoring", "ml", "performance", "daily"],
    params={
        "start_ds": Param(
            None,
            type=["null", "string"],
            format="date",
            description="first score date to measure (default: ds - the label horizon)",
        ),
        "end_ds": Param(
            None,
            type=["null", "string"],
            format="date",
            description="last score date to measure, the one the decision reads (default: "
            "ds - the label horizon)",
        ),
    },
):
    labels = wait_for_dag("offline_feature_table")
    scores = wait_for_dag("model_serving", execution_delta=timedelta(days=HORIZON))
    monitor = databricks_job(
        task_id="monitor_performance",
        script="monitor_performance.py",
        parameters={
            "--ds": "{{ ds }}",
            "--start-ds": "{{ params.start_ds or " + SCORE_DATE + " }}",
            "--end-ds": "{{ params.end_ds or " + SCORE_DATE + " }}",
            "--catalog": ENV.catalog,
            "--model-name": ENV.model_name,
            "--experiment": ENV.mlflow_experiment,
            "--horizon-days": str(HORIZON),
            "--max-ece": str(ENV.performance_max_ece),
            "--max-auc-drop": str(ENV.performance_max_auc_drop),
            "--min-rows": str(ENV.performance_min_rows),
            "--output": REPORT,
            "--airflow-run-id": "{{ run_id }}",
        },
    )
    [labels, scores] >> monitor
    publish_and_branch(
        monitor,
        report=REPORT,
        pipeline="model_performance",
        report_name="model_performance",
        upload_task_id="upload_performance_report",
        sensor_class=PerformanceBranchSensor,
        sensor_task_id="check_performance",
        reason="performance",
        as_of="{{ ds }}",
        retraining_run_id=RETRAINING_RUN_ID,
        cooldown=ENV.performance_cooldown,
    )
