"""
### Online feature table (daily)

Publishes the feature rows of the logical date to `gold.user_features_online` (the Model
Ready Data Set: the latest feature row of every user, keyed by `user_id`), then checks that
the online values equal the offline ones.

| | |
|---|---|
| **Waits for** | `offline_feature_table` run of the same logical date (success) |
| **Input** | `silver.user_features` (partition `feature_date = ds`) |
| **Output** | `gold.user_features_online` (MERGE on `user_id`, latest `feature_date` wins, liquid-clustered by `user_id`) |
| **Runs on** | Databricks (`spark_jobs/publish_online_features.py`); locally on the local workspace |
| **Owner** | ml-platform |

`updated_at` is the run's data-interval end, not the wall clock, so a rerun writes the same
row. When the environment sets `ECOM_ONLINE_SYNC_PIPELINE_ID`, `sync_online_store` triggers
the Databricks synced (online) table over this Delta table for low-latency serving
(`docs/deployment.md`).

**What a failure means.**
- `wait_for_offline_feature_table` failed: the offline run of this date failed; fix and rerun
  it first.
- `check_online_skew` failed: online and offline values differ for this date. The error names
  the columns and example users. Do not serve from the online table until it is understood;
  republishing the date (clear `publish_online_features`) rewrites the rows from offline.

What every DAG's failures have in common (alerts, retries, a job's one-line error, a full pool):
`docs/runbook.md` in the repository.

**Rerun one date.** Clear `publish_online_features` with its downstream tasks for the date
(`docs/runbook.md`, *Rerun one date*).

**Backfill a range.** Together with the upstream DAGs over the same range (`docs/runbook.md`,
*Backfill a range*). Dates may run in any order: an older date never replaces a newer row, so
the table ends with each user's latest row.
"""

from __future__ import annotations

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import daily_dag, databricks_job, sync_online_store, wait_for_dag

ENV = current_environment()

with daily_dag(
    "online_feature_table",
    doc_md=__doc__,
    # One run at a time: runs of different dates MERGE into the same Delta table, and two
    # concurrent MERGEs touching the same files conflict (Delta's optimistic concurrency).
    max_active_runs=1,
    tags=["features", "gold", "online", "daily"],
):
    upstream = wait_for_dag("offline_feature_table")
    publish = databricks_job(
        task_id="publish_online_features",
        script="publish_online_features.py",
        parameters={
            "--ds": "{{ ds }}",
            "--run-ts": "{{ data_interval_end.isoformat() }}",
            "--catalog": ENV.catalog,
        },
    )
    skew = databricks_job(
        task_id="check_online_skew",
        script="publish_online_features.py",
        parameters={"--check-skew": True, "--ds": "{{ ds }}", "--catalog": ENV.catalog},
    )
    upstream >> publish >> skew
    sync = sync_online_store(task_id="sync_online_store")
    if sync is not None:
        skew >> sync
