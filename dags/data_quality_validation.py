"""
### Data quality validation (daily)

Lands the raw click-stream CSV of the logical date into `bronze.events` and validates it.

| | |
|---|---|
| **Input** | `<volume_root>/landing/events/<ds>/*.csv[.gz]` (REES46 format) |
| **Output** | `bronze.events` (partition `ingest_date = ds`), `bronze.events_quarantine` (rows that could not be typed, with a `reason`) |
| **Runs on** | Databricks (`DatabricksSubmitRunOperator`, `spark_jobs/ingest_events.py`); locally on the local workspace |
| **Owner** | ml-platform |

**What a failure means.** `ingest_events` fails when the day's folder is missing, when the file
cannot be read, or when rows in != rows out + quarantined (nothing is ever dropped silently).
The task log and the *See Databricks Job Run* link show the job's error and log.

**Rerun one date.** Clear the task for that date in the grid (or
`airflow tasks clear data_quality_validation -s <ds> -e <ds> -y`). The job overwrites only that
date's partition (`replaceWhere`), so a rerun leaves the tables exactly as one run would.

**Backfill a range.** *Trigger* -> *Backfill* in the UI, or
`airflow backfill create --dag-id data_quality_validation --from-date <start> --to-date <end>`.
"""

from __future__ import annotations

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import daily_dag, databricks_job

ENV = current_environment()

with daily_dag(
    "data_quality_validation",
    doc_md=__doc__,
    tags=["data-quality", "bronze", "daily"],
):
    ingest_events = databricks_job(
        task_id="ingest_events",
        script="ingest_events.py",
        parameters={
            "--ds": "{{ ds }}",
            "--catalog": ENV.catalog,
            "--landing-dir": ENV.landing_dir,
        },
    )
