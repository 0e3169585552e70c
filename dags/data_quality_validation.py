"""
### Data quality validation (daily)

Lands the raw click-stream CSV of the logical date into `bronze.events` and validates it with
Great Expectations: `wait_for_landing_files` -> `ingest_events` -> `validate_bronze_events` ->
`upload_bronze_events_report` -> `check_bronze_events_gate`.

| | |
|---|---|
| **Input** | `<volume_root>/landing/events/<ds>/*.csv[.gz]` (REES46 format) |
| **Output** | `bronze.events` (partition `ingest_date = ds`), `bronze.events_quarantine` (rows that could not be typed, with a `reason`), `bronze.events_ingest_files` (one row per landing file: size, time, rows in, bronze, quarantined), `bronze.events_ingest_log` (one row per date: files, rows in, bronze, quarantined by reason), `monitoring.dq_results` (every expectation's result), the HTML report `<volume_root>/reports/data_quality_validation/<ds>/bronze_events.html` and its copy in Blob (`reports/data_quality_validation/<ds>/bronze_events.html`, the task's *Report* link) |
| **Runs on** | Databricks (`DatabricksSubmitRunOperator`, `spark_jobs/ingest_events.py`); locally on the local workspace |
| **Owner** | ml-platform |

**What a failure means.**
- `wait_for_landing_files` waits (reschedule mode, no worker slot held) until
  `<volume_root>/landing/events/<ds>/` holds the date's complete delivery of `*.csv` /
  `*.csv.gz` files, listed through the Databricks Files API with the jobs' connection (hidden
  `.*`/`_*` files and other extensions do not count). Complete means the environment's
  `landing_completeness` rule: the exporter's `_SUCCESS` marker on Databricks (or an expected
  file count, or a quiet time with no new file: `docs/streaming.md`), ten quiet seconds
  locally. It **fails** when the delivery is not complete within `landing_timeout` (6 h; 15 min
  locally): the log says what is missing (e.g. `no _SUCCESS marker yet (2 file(s) so far)`).
  Deliver the rest, then clear the task (the rest of the run follows). Access denied on the
  Volume fails it at once.
- `ingest_events` reads the landing folder as a stream (Auto Loader on Databricks, the Spark
  file source locally; checkpoint in `<volume_root>/checkpoints/ingest_events`): every file
  that arrived since the last run, of any date, lands once; a part of an earlier date that
  came late lands with that date. Then it settles the logical date: if a file of the date was
  delivered again with other content (or removed), or the task is a retry or a clear, the date
  is re-ingested whole from its files. One date at a time (a backfill's dates queue). It fails when a file cannot be read
  (e.g. a truncated `.csv.gz`, named in the error), or when a file's rows in != rows out +
  quarantined (nothing is ever dropped silently or landed twice). Bad
  lines do not fail it: they go to `bronze.events_quarantine` with a `reason`; a file whose
  header has other columns (renamed, reordered, missing, extra: a schema change upstream) is
  quarantined whole as `header_mismatch`, and the log names the difference. The task log and
  the *See Databricks Job Run* link show the job's error and log.
- `check_bronze_events_gate` fails when a **blocking** expectation failed (schema, an empty day
  with 0 rows, null keys, unknown event types, a volume far from the recent days, too many
  quarantined rows). Its message names each failed expectation with the observed and expected
  values (an empty day: `0 rows (the 1 file(s) of the date hold no rows: empty or header
  only)`); the *Report* link of `upload_bronze_events_report` opens the full page. The
  downstream DAGs of that date do not run. **Warning** expectations (prices out of range, late events, duplicates) are
  listed in the log and the report but let the day through. Fix the input (or accept it and
  change the threshold in `spark_jobs/clickstream/quality/checks.py`; every check and its threshold:
  `docs/quality_checks.md`), then rerun the date.

What every DAG's failures have in common (alerts, retries, a job's one-line error, a full pool):
`docs/runbook.md` in the repository.

**Rerun one date.** Clear `ingest_events` (or the failed task) with its downstream tasks for
the date; the downstream DAGs of that date follow as `docs/runbook.md` (*Rerun one date*) says.
The cleared task re-ingests the date from its current files (a corrected file delivered under
the same name included) and leaves bronze as one run over them would.

**Backfill a range.** Together with the downstream daily DAGs over the same range
(`docs/runbook.md`, *Backfill a range*).
"""

from __future__ import annotations

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import daily_dag, data_quality_checks, databricks_job
from ecom_plugins import LandingFilesSensor

ENV = current_environment()

with daily_dag(
    "data_quality_validation",
    doc_md=__doc__,
    tags=["data-quality", "bronze", "daily"],
):
    # No worker slot is held while waiting (reschedule); a timeout fails without retry.
    wait_for_landing_files = LandingFilesSensor(
        task_id="wait_for_landing_files",
        folder=f"{ENV.landing_dir}/{{{{ ds }}}}",
        databricks_conn_id=ENV.databricks_conn_id,
        completeness=ENV.landing_completeness,
        poke_interval=ENV.landing_poke_seconds,
        timeout=ENV.landing_timeout.total_seconds(),
    )
    ingest_events = databricks_job(
        task_id="ingest_events",
        script="ingest_events.py",
        parameters={
            "--ds": "{{ ds }}",
            "--catalog": ENV.catalog,
            "--landing-dir": ENV.landing_dir,
            "--checkpoint": f"{ENV.checkpoints_dir}/ingest_events",
            "--source": ENV.landing_source,
            "--trigger": "none" if ENV.landing_continuous else "available-now",
            # A retried or cleared task re-ingests its date from the files (on-call's rerun).
            "--try-number": "{{ ti.try_number }}",
        },
        # One stream per checkpoint: the dates of a backfill ingest one after another (the
        # first reads every file there; the others settle their date).
        max_active_tis_per_dag=1,
    )
    validate, _upload, _gate = data_quality_checks(
        pipeline="data_quality_validation", report="bronze_events", suites=["bronze_events"]
    )
    wait_for_landing_files >> ingest_events >> validate
