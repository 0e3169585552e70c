"""
### Offline feature table (daily)

Builds `silver.events` from the day's bronze rows and the offline feature table
`silver.user_features` (the Analytics Ready Data Set) as of the end of the logical date, then
closes the labels whose horizon has just passed, and validates the day's silver events and
feature rows with Great Expectations (`validate_features` -> `upload_features_report` ->
`check_features_gate`; report `reports/offline_feature_table/<ds>/features.html`).

| | |
|---|---|
| **Waits for** | `data_quality_validation` run of the same logical date (success) |
| **Input** | `bronze.events` (partition `ingest_date = ds`), `silver.events` (its change feed since the last refresh and the event dates it changed; all of it when the kept activity is rebuilt), `silver.user_daily_activity` (30-day horizon), `silver.events` purchases for the labels |
| **Output** | `silver.events` (MERGE on `event_id`, partitioned by `event_date`), `silver.user_daily_activity` (the event dates whose silver rows changed since its last refresh), `silver.user_features` (partition `feature_date = ds`), `silver.user_labels` (MERGE, feature date `ds - 7`) |
| **Runs on** | Databricks (`spark_jobs/build_silver_events.py`, `spark_jobs/build_user_features.py`); locally on the local workspace |
| **Owner** | ml-platform |

The features of date D use only events that happened on or before D *and* were delivered by D
(`ingest_date <= D`), so rerunning D next month gives the same row
(`docs/tables_and_features.md`).

**What a failure means.**
- `wait_for_data_quality_validation` failed: the data quality run of this date failed (a
  blocking expectation or a missing file). Fix and rerun that date there first.
- `build_silver_events` / `build_user_features` failed: the task log and *See Databricks Job
  Run* show the job's one-line error (a schema contract break names the column).
- `check_features_gate` failed: a blocking expectation on silver events (duplicate event
  keys, null keys) or on the feature rows (two rows for a user, negative counts) failed; the
  message names it with its observed value and the *Report* link opens the page. The online
  table and serving of that date do not run.

What every DAG's failures have in common (alerts, retries, a job's one-line error, a full pool):
`docs/runbook.md` in the repository.

**Rerun one date.** Clear `build_silver_events` (or the failed task) with its downstream tasks
for the date; the downstream DAGs of that date follow as `docs/runbook.md` (*Rerun one date*)
says.

**Backfill a range.** Together with `data_quality_validation` over the same range
(`docs/runbook.md`, *Backfill a range*). This DAG runs forward only: `build_user_features` has
`depends_on_past`, so the features of D run only after those of D-1 succeeded and every day of
the 30-day horizon is in silver first (Airflow refuses a backwards backfill of it). For months
of history, the features of a whole range are one Spark job (`docs/runbook.md`, *Load months of
history in one job*).
"""

from __future__ import annotations

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import daily_dag, data_quality_checks, databricks_job, wait_for_dag

ENV = current_environment()

with daily_dag(
    "offline_feature_table",
    doc_md=__doc__,
    # One run at a time: runs of different dates MERGE into the same Delta table, and two
    # concurrent MERGEs touching the same files conflict (Delta's optimistic concurrency).
    max_active_runs=1,
    tags=["features", "silver", "daily"],
):
    upstream = wait_for_dag("data_quality_validation")
    silver = databricks_job(
        task_id="build_silver_events",
        script="build_silver_events.py",
        parameters={"--ds": "{{ ds }}", "--catalog": ENV.catalog},
    )
    features = databricks_job(
        task_id="build_user_features",
        script="build_user_features.py",
        parameters={
            "--ds": "{{ ds }}",
            "--catalog": ENV.catalog,
            "--label-horizon-days": str(ENV.label_horizon_days),
        },
        depends_on_past=True,
    )
    validate, _upload, _gate = data_quality_checks(
        pipeline="offline_feature_table",
        report="features",
        suites=["silver_events", "user_features"],
    )
    upstream >> silver >> features >> validate
