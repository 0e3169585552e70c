"""
### Data quality validation (daily)

Lands the raw click-stream CSV of the logical date into `bronze.events` and validates it with
Great Expectations: `ingest_events` -> `validate_bronze_events` -> `upload_bronze_events_report`
-> `check_bronze_events_gate`.

| | |
|---|---|
| **Input** | `<volume_root>/landing/events/<ds>/*.csv[.gz]` (REES46 format) |
| **Output** | `bronze.events` (partition `ingest_date = ds`), `bronze.events_quarantine` (rows that could not be typed, with a `reason`), `monitoring.dq_results` (every expectation's result), the HTML report `<volume_root>/reports/data_quality_validation/<ds>/bronze_events.html` and its copy in Blob (`reports/data_quality_validation/<ds>/bronze_events.html`, the task's *Report* link) |
| **Runs on** | Databricks (`DatabricksSubmitRunOperator`, `spark_jobs/ingest_events.py`); locally on the local workspace |
| **Owner** | ml-platform |

**What a failure means.**
- `ingest_events` fails when the day's folder is missing, when the file cannot be read, or
  when rows in != rows out + quarantined (nothing is ever dropped silently). The task log and
  the *See Databricks Job Run* link show the job's error and log.
- `check_bronze_events_gate` fails when a **blocking** expectation failed (schema, null keys,
  unknown event types, a volume far from the recent days, too many quarantined rows). Its
  message names each failed expectation with the observed and expected values; the *Report*
  link of `upload_bronze_events_report` opens the full page. The downstream DAGs of that date
  do not run. **Warning** expectations (prices out of range, late events, duplicates) are
  listed in the log and the report but let the day through. Fix the input (or accept it and
  change the threshold in `spark_jobs/clickstream/quality.py`), then clear `ingest_events`
  with its downstream tasks.

**Rerun one date.** Clear the task for that date in the grid (or
`airflow tasks clear data_quality_validation -s <ds> -e <ds> -y`). The job overwrites only that
date's partition (`replaceWhere`), so a rerun leaves the tables exactly as one run would.

**Backfill a range.** *Trigger* -> *Backfill* in the UI, or
`airflow backfill create --dag-id data_quality_validation --from-date <start> --to-date <end>`.
"""

from __future__ import annotations

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import daily_dag, data_quality_checks, databricks_job

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
    validate, _upload, _gate = data_quality_checks(
        pipeline="data_quality_validation", report="bronze_events", suites=["bronze_events"]
    )
    ingest_events >> validate
