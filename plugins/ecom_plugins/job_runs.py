"""List the Databricks runs the DAGs started and hand them to the collection job.

``JobRunsToVolumeOperator`` asks the Jobs API, with the jobs' own connection
(``databricks_conn_id``, through ``databricks-sdk``'s ``jobs.list_runs``: the one-time runs,
``SUBMIT_RUN``, that started in ``[start_time, end_time)``, tasks and clusters expanded), keeps
the runs whose name the DAGs' job tasks set (``<dag_id>.<task_id> [<ds>]``, the pattern
``ecom_airflow.tasks.RUN_NAME_PATTERN``) and writes them, one ``runs/get`` answer a line, to a
Volume file through the Files API. ``spark_jobs/collect_job_runs.py`` merges that file into
``monitoring.job_runs``: the task exchanges a Volume path, never a local file, and imports no
Spark.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from ecom_plugins import workspace_files

if TYPE_CHECKING:
    from airflow.sdk import Context

MAX_TASKS_LISTED = 100  # runs/list shows a run's first 100 tasks; runs/get pages the rest


def parse_instant(value: str, name: str) -> datetime:
    """An ISO 8601 date-time (UTC when it names no zone) from a rendered template."""
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise AirflowException(
            f"{name} {value!r} is not an ISO 8601 date-time (e.g. 2019-11-08T00:00:00+00:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def list_dag_runs(client, start: datetime, end: datetime, pattern: str) -> tuple[list, list[str]]:
    """(the runs named by ``pattern`` that started in ``[start, end)``, the other runs' names).

    A run listed with more tasks than the list shows is read whole with ``runs/get``.
    """
    from databricks.sdk.service.jobs import RunType

    ours, others = [], []
    name = re.compile(pattern)
    for run in client.jobs.list_runs(
        start_time_from=epoch_ms(start),
        start_time_to=epoch_ms(end) - 1,
        run_type=RunType.SUBMIT_RUN,
        expand_tasks=True,
    ):
        if not name.fullmatch(run.run_name or ""):
            others.append(run.run_name or "(unnamed)")
            continue
        if run.has_more or len(run.tasks or []) >= MAX_TASKS_LISTED:
            run = client.jobs.get_run(run.run_id)
        ours.append(run)
    return ours, others


class JobRunsToVolumeOperator(BaseOperator):
    """Write the DAGs' Databricks runs of a window to ``output_path`` as JSON lines.

    :param output_path: Volume path of the file (overwritten on a rerun) (templated).
    :param start_time: ISO 8601 start of the window, included (templated).
    :param end_time: ISO 8601 end of the window, excluded (templated).
    :param run_name_pattern: regular expression a run's whole name must match to be collected.
    :param databricks_conn_id: the connection of the workspace (the jobs' connection).
    """

    template_fields = ("output_path", "start_time", "end_time")
    ui_color = "#eef7ee"

    def __init__(
        self,
        *,
        output_path: str,
        start_time: str,
        end_time: str,
        run_name_pattern: str,
        databricks_conn_id: str = "databricks_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_path = output_path
        self.start_time = start_time
        self.end_time = end_time
        self.run_name_pattern = run_name_pattern
        self.databricks_conn_id = databricks_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from databricks.sdk.errors import DatabricksError, PermissionDenied, Unauthenticated

        start = parse_instant(self.start_time, "start_time")
        end = parse_instant(self.end_time, "end_time")
        if end <= start:
            raise AirflowException(f"the window ends ({end}) before it starts ({start})")
        if not self.output_path.startswith("/Volumes/"):
            raise AirflowException(f"{self.output_path!r} is not a Volume path (/Volumes/...)")
        client = workspace_files.workspace_client(self.databricks_conn_id)
        self.log.info("Listing the one-time runs that started in [%s, %s)", start, end)
        try:
            runs, others = list_dag_runs(client, start, end, self.run_name_pattern)
            body = "".join(json.dumps(run.as_dict(), sort_keys=True) + "\n" for run in runs)
            client.files.upload(self.output_path, io.BytesIO(body.encode()), overwrite=True)
        except (PermissionDenied, Unauthenticated) as error:
            raise AirflowException(
                f"The workspace of connection {self.databricks_conn_id!r} refused "
                f"({type(error).__name__}): {error}. The token's principal needs to see the "
                "job runs (workspace admin, or CAN VIEW on them) and WRITE VOLUME on "
                f"{self.output_path.rsplit('/', 1)[0]}."
            ) from error
        except DatabricksError as error:
            raise AirflowException(
                f"Listing the job runs or writing {self.output_path} failed on the workspace of "
                f"connection {self.databricks_conn_id!r}: {error}"
            ) from error
        if others:
            shown = ", ".join(sorted(set(others))[:5])
            self.log.info("Ignored %d runs not started by the DAGs (e.g. %s)", len(others), shown)
        self.log.info("Wrote %d runs of the DAGs to %s", len(runs), self.output_path)
        return {
            "path": self.output_path,
            "runs": len(runs),
            "ignored": len(others),
            "start_time": start.isoformat(),
            "end_time": end.isoformat(),
        }
