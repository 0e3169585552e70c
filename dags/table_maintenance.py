"""
### Table maintenance (weekly)

Compacts and clusters every Delta table the pipelines write (`OPTIMIZE`, Z-ordered by each
table's read key), then deletes the files no version within the retention needs (`VACUUM`),
keeping every Delta version a registered model was trained on readable.

`maintain_tables` (one job: `spark_jobs/maintain_tables.py`)

| | |
|---|---|
| **Schedule** | weekly, Sunday 06:00 UTC; the run with `ds` = a Sunday runs a week later, Z-orders the date partitions from `ds - 7` on and compacts the older ones |
| **Input** | every table of the bronze, silver, gold and monitoring schemas (a missing one is skipped); the lineage tags (`delta_version.<table>`) of every registered version of the propensity and the recommender models in MLflow; the daily activity's last refresh record |
| **Output** | the same tables compacted and clustered, their `delta.deletedFileRetentionDuration` (and, when needed, `delta.logRetentionDuration`) set to the retention kept, the files older than it deleted; the job log lists per table the files and bytes before and after, the retention and the pinned versions it kept, the files deleted and the time taken |
| **Runs on** | Databricks (`spark_jobs/maintain_tables.py`); locally on the local workspace |
| **Owner** | ml-platform |

**Retention.** The environment's `vacuum_retention` (30 days on Databricks, 1 hour locally),
raised per table to the age of the oldest version a registered model version pins there (or
the daily activity's next refresh reads after) plus 8 days, so that version stays readable
until next week's run. The rule and the keys: `docs/cost.md`.

**What a failure means.**
- "its run ... cannot be read": a registered model version's training run is gone, so the
  versions it was trained on are unknown; nothing was vacuumed. Delete that model version if it
  is no longer needed, or restore its run.
- A Delta conflict (`DELTA_CONCURRENT_...`) after the job's retries: a pipeline wrote to the
  table during maintenance; clear the task.
- Anything else: the task log and *See Databricks Job Run* show the job's one-line error.

What every DAG's failures have in common: `docs/runbook.md` in the repository.

**Rerun.** Clear `maintain_tables`: compacting compacted files and a second `VACUUM` change
nothing, so a rerun is safe at any time (a run of an older `ds` Z-orders every partition from
its `ds - 7` on: more work, the same tables).

**Backfill.** Never needed: each run maintains the tables as they are; trigger the DAG by hand
for an extra pass (e.g. after loading months of history).
"""

from __future__ import annotations

from datetime import timedelta

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import databricks_job, weekly_dag

ENV = current_environment()
# A pinned version must stay inside the retention until the next weekly run moves it: a week,
# plus a day for a late or retried run.
PIN_MARGIN = timedelta(days=8)
HOUR = timedelta(hours=1)

with weekly_dag(
    "table_maintenance",
    doc_md=__doc__,
    tags=["maintenance", "cost", "weekly"],
):
    databricks_job(
        task_id="maintain_tables",
        script="maintain_tables.py",
        parameters={
            "--catalog": ENV.catalog,
            "--retention-hours": f"{ENV.vacuum_retention / HOUR:g}",
            "--pin-margin-hours": f"{PIN_MARGIN / HOUR:g}",
            "--model-name": [ENV.model_name, ENV.recommender_name],
            "--zorder-since": "{{ macros.ds_add(ds, -7) }}",
        },
        timeout=timedelta(hours=3),
    )
