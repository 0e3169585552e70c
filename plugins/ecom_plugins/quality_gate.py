"""Gate a DAG run on the JSON summary of the data-quality job.

The job (Great Expectations on Databricks) writes a summary next to its HTML report::

    {"ds": "2019-10-01", "suites": [...], "success": false,
     "blocking_failures": [{"suite", "expectation", "column", "observed", "expected"}],
     "warnings": [same shape],
     "counts": {"evaluated", "passed", "blocking_failed", "warning_failed", "skipped"},
     "report": "/Volumes/.../bronze_events.html"}

The gate logs the counts and every warning, pushes the counts to XCom (key ``counts`` and
the return value) and fails without retry when ``success`` is false: the data of the date does
not change by retrying, a fix (new data, a changed expectation) and a cleared task do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from ecom_plugins import workspace_files

if TYPE_CHECKING:
    from airflow.sdk import Context

COUNT_KEYS = ("evaluated", "passed", "blocking_failed", "warning_failed", "skipped")


def _describe(failure: dict) -> str:
    column = f" on column {failure['column']!r}" if failure.get("column") else ""
    return (
        f"{failure.get('suite', '?')}: {failure.get('expectation', '?')}{column} "
        f"(observed {failure.get('observed')!r}, expected {failure.get('expected')!r})"
    )


class DataQualityGateOperator(BaseOperator):
    """Fail the run when the data-quality summary at ``summary_path`` has blocking failures.

    :param summary_path: Volume path of the job's JSON summary (templated).
    :param databricks_conn_id: connection of the workspace that holds the Volume.
    """

    template_fields = ("summary_path",)
    ui_color = "#fdf0e8"

    def __init__(
        self, *, summary_path: str, databricks_conn_id: str = "databricks_default", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.summary_path = summary_path
        self.databricks_conn_id = databricks_conn_id

    def execute(self, context: Context) -> dict[str, int]:
        upstream = sorted(self.upstream_task_ids)
        summary = workspace_files.read_json(
            self.summary_path,
            databricks_conn_id=self.databricks_conn_id,
            produced_by=f"upstream task(s) {upstream}" if upstream else "the data-quality job",
        )
        counts, blocking, warnings = self._validated(summary)
        self.log.info(
            "Data quality of %s (suites %s): %s",
            summary.get("ds"),
            ", ".join(map(str, summary.get("suites") or [])) or "-",
            ", ".join(f"{key}={counts[key]}" for key in COUNT_KEYS),
        )
        for warning in warnings:
            self.log.warning("Non-blocking expectation failed: %s", _describe(warning))
        context["ti"].xcom_push(key="counts", value=counts)
        if not summary["success"]:
            lines = "\n".join(f"  - {_describe(failure)}" for failure in blocking)
            raise AirflowFailException(
                f"Data quality gate failed for {summary.get('ds')}: {len(blocking)} blocking "
                f"expectation(s) failed (report: {summary.get('report')}):\n{lines}\n"
                "Not retried: fix the data or the expectation, then clear this task."
            )
        return counts

    def _validated(self, summary: Any) -> tuple[dict[str, int], list[dict], list[dict]]:
        problem = None
        if not isinstance(summary, dict):
            problem = "it is not a JSON object"
        elif not isinstance(summary.get("success"), bool):
            problem = "'success' is missing or not a boolean"
        elif not isinstance(summary.get("counts"), dict) or not all(
            isinstance(summary["counts"].get(key), int) for key in COUNT_KEYS
        ):
            problem = f"'counts' must hold the integers {', '.join(COUNT_KEYS)}"
        elif not all(
            isinstance(summary.get(key, []), list)
            and all(isinstance(item, dict) for item in summary.get(key, []))
            for key in ("blocking_failures", "warnings")
        ):
            problem = "'blocking_failures' and 'warnings' must be lists of objects"
        elif not summary["success"] and not summary.get("blocking_failures"):
            problem = "'success' is false but 'blocking_failures' is empty"
        if problem:
            raise AirflowException(f"Invalid data-quality summary {self.summary_path}: {problem}")
        counts = {key: summary["counts"][key] for key in COUNT_KEYS}
        return counts, summary.get("blocking_failures", []), summary.get("warnings", [])
