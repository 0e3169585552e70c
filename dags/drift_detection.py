"""
### Drift detection (monthly)

Compares last month's offline feature rows (and score distribution) with the champion's
training window using Evidently, publishes the report, and retrains when the month drifted.

`wait_for_offline_feature_table` (the month's last day) -> `detect_drift` ->
`upload_drift_report` and `check_drift` -> `trigger_retraining` | `skip_retraining` -> `done`

| | |
|---|---|
| **Schedule** | monthly; the run with `ds = YYYY-MM-01` checks that calendar month and runs after it ended |
| **Waits for** | `offline_feature_table` run of the month's last day (success) |
| **Input** | `silver.user_features` (feature dates of the month and of the champion's training window), `gold.propensity_scores`, the champion's MLflow tags (`train_window_start` / `train_window_end`) |
| **Output** | `monitoring.drift_metrics` (one row per feature column and period), `reports/drift_detection/<ds>/feature_drift.html` + `.json` on the reports Volume, the HTML in Blob (`reports/drift_detection/<ds>/feature_drift.html`, the *Report* link), and a `model_training` run with conf `{"reason": "drift", "as_of": <month's last day>, "drift_summary": <the summary's path>}` when drift is found |
| **Runs on** | Databricks (`spark_jobs/detect_drift.py`); locally on the local workspace |
| **Owner** | ml-platform |

**The decision.** `check_drift` (a reschedule-mode sensor: it holds no worker slot while it
waits) reads the JSON summary and picks `trigger_retraining` when the share of drifted feature
columns reaches `drift_share` with enough rows on both sides (fewer is "insufficient data",
never drift), no drift retraining happened within `drift_cooldown` and none is in flight;
otherwise `skip_retraining`. The decision and its reason are in the task log and its XCom.
`trigger_retraining` starts `model_training` with the run id `drift__<ds>`. The details and the
threshold: `docs/drift.md`.

**What a failure means.**
- `detect_drift` failed with "no champion": nothing was promoted yet, so there is no reference
  window. Run `model_training` first.
- `upload_drift_report` failed: the message names the container or connection (`wasb_default`).
- `check_drift` timed out: the summary named in the message was never written; look at
  `detect_drift`'s run.

What every DAG's failures have in common: `docs/runbook.md` in the repository.

**Rerun one month.** Clear `detect_drift` with its downstream tasks for that `ds`: the metrics
of the period are replaced, the report overwritten, and the retraining is not triggered twice.

**Backfill a range.** One run per month (`ds` = the month's first day; `docs/runbook.md`,
*Backfill a range*); backfill past months only if their reports are wanted.
"""

from __future__ import annotations

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import (
    databricks_job,
    last_day_of_interval,
    monthly_dag,
    publish_and_branch,
    report_prefix,
    wait_for_dag,
)
from ecom_plugins import DriftBranchSensor

ENV = current_environment()
PERIOD_START = "{{ data_interval_start | ds }}"
PERIOD_END = "{{ (data_interval_end - macros.timedelta(days=1)) | ds }}"
REPORT = report_prefix("drift_detection", "feature_drift")
RETRAINING_RUN_ID = "drift__{{ ds }}"

with monthly_dag(
    "drift_detection",
    doc_md=__doc__,
    tags=["monitoring", "drift", "evidently", "monthly"],
):
    upstream = wait_for_dag("offline_feature_table", execution_date_fn=last_day_of_interval)
    detect = databricks_job(
        task_id="detect_drift",
        script="detect_drift.py",
        parameters={
            "--start-ds": PERIOD_START,
            "--end-ds": PERIOD_END,
            "--catalog": ENV.catalog,
            "--model-name": ENV.model_name,
            "--experiment": ENV.mlflow_experiment,
            "--drift-share": str(ENV.drift_share),
            "--min-rows": str(ENV.drift_min_rows),
            "--max-rows": str(ENV.drift_max_rows),
            "--output": REPORT,
            "--airflow-run-id": "{{ run_id }}",
        },
    )
    upstream >> detect
    publish_and_branch(
        detect,
        report=REPORT,
        pipeline="drift_detection",
        report_name="feature_drift",
        upload_task_id="upload_drift_report",
        sensor_class=DriftBranchSensor,
        sensor_task_id="check_drift",
        reason="drift",
        as_of=PERIOD_END,
        retraining_run_id=RETRAINING_RUN_ID,
        cooldown=ENV.drift_cooldown,
    )
