"""
### Pipeline monitoring (daily)

Watches the pipelines themselves: every Databricks run the DAGs started, how long each phase
took, whether it failed or was retried, what it cost, and which jobs are slowing down.

`list_job_runs` -> `collect_job_runs` -> `report_operations` -> `upload_operations_report`

| | |
|---|---|
| **Schedule** | daily; the run of `ds` collects the runs that started in the two days before its data interval's end (`job_runs_lookback`: yesterday's, and the day before's again so a run in flight at the last collection gets its final state) |
| **Input** | the Databricks Jobs API (`runs/list`: one-time runs named `<dag_id>.<task_id> [<ds>]`, as every job task of the DAGs names its run; any other run is ignored), `monitoring.job_runs` (the report's window, `operations_report_days`), the environment's price table (`include/ecom_airflow/config.py`, `PriceTable`) |
| **Output** | `monitoring.job_runs` (one row per run, merged by `run_id`: state, queue/setup/execution/cleanup/total seconds, job cluster or serverless with node type and workers, estimated cost), `reports/pipeline_monitoring/<ds>/job_runs.jsonl` (the runs listed), `reports/pipeline_monitoring/<ds>/operations.html` + `.json` on the reports Volume, the HTML in Blob (`pipeline_monitoring/<ds>/operations.html`, the *Report* link of `upload_operations_report`) |
| **Runs on** | Airflow (`list_job_runs`, with the jobs' connection) and Databricks (`spark_jobs/collect_job_runs.py`, `spark_jobs/report_operations.py`); locally on the local workspace |
| **Owner** | ml-platform |

**The report.** Runs, failures and retries per job (a retry is one more run of the same task
and logical date), the phases' medians, the duration trend per job with the growing ones
flagged (the median execution time of the last `duration_trend_runs` successful runs at least
`duration_trend_ratio` times that of the runs before them, and `duration_trend_min_seconds`
longer), the estimated cost by DAG and by logical date, and one day of the daily chain at 1x
and 16x the volume. Costs are estimates from list prices (`docs/pipeline_monitoring.md`); the
bill is in `system.billing.usage`.

**What a failure means.**
- `list_job_runs` failed: the message names the connection and what the workspace refused
  (the token's principal must see the job runs and write the reports Volume), or the window
  (`start_time`/`end_time` params) that is not a date-time.
- `collect_job_runs` failed with "does not exist": the runs file of the date is missing; clear
  `list_job_runs` too. A line that is not JSON is named with its number.
- `report_operations` failed with "does not exist: run collect_job_runs": no run was ever
  collected in this catalog.
- `upload_operations_report` failed: the message names the container or connection.

What every DAG's failures have in common: `docs/runbook.md` in the repository.

**Rerun one date.** Clear `list_job_runs` with its downstream tasks: the window is listed
again, its runs' rows are updated in place (a MERGE by `run_id`, never a duplicate), the page
is overwritten.

**Backfill a range.** One run per logical date (`docs/runbook.md`, *Backfill a range*); the
windows overlap by the lookback, harmlessly. The Jobs API keeps runs for 60 days: older ones
cannot be collected. Or one run triggered with conf `{"start_time": ..., "end_time": ...}`
(ISO 8601) to collect and report any window at once, as `make run` does for its own runs.
"""

from __future__ import annotations

from airflow.sdk import Param

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import (
    RUN_NAME_PATTERN,
    daily_dag,
    databricks_job,
    report_prefix,
)
from ecom_plugins import HtmlReportToBlobOperator, JobRunsToVolumeOperator

ENV = current_environment()
LOOKBACK = int(ENV.job_runs_lookback.total_seconds())
WINDOW_END = "{{ params.end_time or data_interval_end.isoformat() }}"
WINDOW_START = (
    "{{ params.start_time or "
    f"(data_interval_end - macros.timedelta(seconds={LOOKBACK})).isoformat() }}}}"
)
RUNS = report_prefix("pipeline_monitoring", "job_runs") + ".jsonl"
REPORT = report_prefix("pipeline_monitoring", "operations")

with daily_dag(
    "pipeline_monitoring",
    doc_md=__doc__,
    tags=["monitoring", "operations", "cost", "daily"],
    max_active_runs=1,
    params={
        "start_time": Param(
            None,
            type=["null", "string"],
            description="start of the window of runs to collect, ISO 8601 (default: the data "
            "interval's end minus the lookback)",
        ),
        "end_time": Param(
            None,
            type=["null", "string"],
            description="end of the window (excluded), ISO 8601 (default: the data interval's "
            "end); also the end of the report's window",
        ),
    },
):
    listed = JobRunsToVolumeOperator(
        task_id="list_job_runs",
        output_path=RUNS,
        start_time=WINDOW_START,
        end_time=WINDOW_END,
        run_name_pattern=RUN_NAME_PATTERN,
        databricks_conn_id=ENV.databricks_conn_id,
    )
    collected = databricks_job(
        task_id="collect_job_runs",
        script="collect_job_runs.py",
        parameters={
            "--ds": "{{ ds }}",
            "--catalog": ENV.catalog,
            "--input": RUNS,
            "--prices": ENV.prices.as_parameter(),
            "--airflow-run-id": "{{ run_id }}",
        },
    )
    reported = databricks_job(
        task_id="report_operations",
        script="report_operations.py",
        parameters={
            "--ds": "{{ ds }}",
            "--catalog": ENV.catalog,
            "--end-time": WINDOW_END,
            "--days": str(ENV.operations_report_days),
            "--output": REPORT,
            "--trend-runs": str(ENV.duration_trend_runs),
            "--trend-ratio": str(ENV.duration_trend_ratio),
            "--trend-min-seconds": str(ENV.duration_trend_min_seconds),
        },
    )
    upload = HtmlReportToBlobOperator(
        task_id="upload_operations_report",
        report_path=f"{REPORT}.html",
        pipeline="pipeline_monitoring",
        report_name="operations",
        container=ENV.reports_container,
        databricks_conn_id=ENV.databricks_conn_id,
        wasb_conn_id=ENV.wasb_conn_id,
    )
    listed >> collected >> reported >> upload
