"""Wait for the drift job's summary, then branch to retraining or not.

The drift job (Evidently on Databricks) writes a JSON summary for its period::

    {"period_start", "period_end", "status": "drift" | "no_drift" | "insufficient_data",
     "drift_share": 0.41 | null, "threshold": 0.3, "sufficient": true, "min_rows": 1000,
     "drifted_columns": [...], "columns": [...],
     "reference": {"start", "end", "rows", "model_name", "model_version", "run_id"},
     "current": {"rows"}, "scores": {...},
     "last_drift_retraining": {"as_of": "YYYY-MM-DD", "run_id"} | null,
     "report": "/Volumes/.../drift.html", "table": "..."}

Retraining is triggered (branch ``trigger_task_id``) only when all three hold, otherwise the
run follows ``skip_task_id``:

1. drift: enough rows (``sufficient``) and ``drift_share >= threshold`` (the operator's
   ``threshold``, else the summary's);
2. cooldown: no drift retraining within ``cooldown`` before ``period_end`` (dates from the
   data, never the wall clock);
3. nothing in flight: the training DAG has no queued or running run ``retraining_run_id``
   (asked through the Task SDK's ``ti.get_dr_count``, i.e. the execution API: tasks do not
   touch the metadata database in Airflow 3);
4. not a backfill, unless it asks: a backfill of old months reports their drift but does not
   retrain (a retraining as of an old month would replace today's champion with a model of old
   data) unless the backfill's run conf holds ``{"retrain": true}``.

The decision is logged in one line and pushed to XCom ``drift_decision``:
``{"decision", "reason", "detail", "drift_share", "threshold", "status"}`` with ``reason`` one
of ``drift``, ``insufficient_data``, ``below_threshold``, ``cooldown``, ``backfill``,
``in_flight``.

Reschedule mode by default: between pokes the sensor holds no worker slot. A missing summary
means "not yet"; any other error fails the task.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, BranchMixIn, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from ecom_plugins import workspace_files

if TYPE_CHECKING:
    from airflow.sdk import Context

DECISION_KEY = "drift_decision"
RETRAIN_CONF_KEY = "retrain"  # a backfill's run conf that lets it retrain
STATUSES = ("drift", "no_drift", "insufficient_data")
IN_FLIGHT_STATES = ["queued", "running"]


class DriftBranchSensor(BaseSensorOperator, BranchMixIn):
    """Wait for the drift summary at ``summary_path``, then follow one of two branches.

    :param summary_path: Volume path of the drift job's JSON summary (templated).
    :param trigger_task_id: downstream task that triggers retraining.
    :param skip_task_id: downstream task followed when retraining is not due.
    :param threshold: drift share from which to retrain (default: the summary's threshold).
    :param cooldown: minimum time between two drift retrainings, measured in data time.
    :param training_dag_id: the DAG the trigger task starts.
    :param retraining_run_id: run id the trigger task gives the training run (templated).
    :param databricks_conn_id: connection of the workspace that holds the Volume.
    """

    template_fields = ("summary_path", "retraining_run_id")
    # What the summary is about and where the decision goes (a subclass watches another signal).
    subject = "drift"
    decision_key = DECISION_KEY
    inherits_from_skipmixin = True  # lets the scheduler keep the skipped branch skipped on clear
    ui_color = "#f0e8fd"

    def __init__(
        self,
        *,
        summary_path: str,
        trigger_task_id: str = "trigger_retraining",
        skip_task_id: str = "skip_retraining",
        threshold: float | None = None,
        cooldown: timedelta = timedelta(days=14),
        training_dag_id: str = "model_training",
        retraining_run_id: str = "drift__{{ ds }}",
        databricks_conn_id: str = "databricks_default",
        mode: str = "reschedule",
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, **kwargs)
        self.summary_path = summary_path
        self.trigger_task_id = trigger_task_id
        self.skip_task_id = skip_task_id
        self.threshold = threshold
        self.cooldown = cooldown
        self.training_dag_id = training_dag_id
        self.retraining_run_id = retraining_run_id
        self.databricks_conn_id = databricks_conn_id

    def poke(self, context: Context) -> bool | PokeReturnValue:
        try:
            summary = workspace_files.read_json(
                self.summary_path, databricks_conn_id=self.databricks_conn_id
            )
        except workspace_files.WorkspaceFileNotFound:
            self.log.info("Waiting for the %s summary %s", self.subject, self.summary_path)
            return False
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            summary = super().execute(context)
        except AirflowSensorTimeout as error:
            raise AirflowSensorTimeout(
                f"The {self.subject} summary {self.summary_path} did not appear within "
                f"{self.timeout:.0f} s: did the {self.subject} job of this run succeed? ({error})"
            ) from error
        decision = self.decide(summary, context)
        self.log_decision(decision)
        context["ti"].xcom_push(key=self.decision_key, value=decision)
        self.do_branch(context, decision["decision"])
        return decision

    def log_decision(self, decision: dict[str, Any]) -> None:
        self.log.info(
            "Drift decision: %(decision)s, reason %(reason)s: %(detail)s "
            "(status %(status)s, drift_share %(drift_share)s, threshold %(threshold)s)",
            decision,
        )

    def backfill_hold(self, context: Context) -> str | None:
        """Why this run must not retrain although the rule says so: it is a backfill whose run
        conf does not hold ``{"retrain": true}`` (None otherwise)."""
        dag_run = context.get("dag_run")
        run_type = getattr(dag_run, "run_type", None)
        if getattr(run_type, "value", run_type) != "backfill":  # DagRunType is a str enum
            return None
        if (getattr(dag_run, "conf", None) or {}).get(RETRAIN_CONF_KEY) is True:
            return None
        return (
            f"run {dag_run.run_id} is a backfill: it reports but does not retrain (create the "
            f'backfill with run conf {{"{RETRAIN_CONF_KEY}": true}} to let it)'
        )

    def in_flight(self, context: Context) -> int:
        """Queued or running runs ``retraining_run_id`` of the training DAG (execution API)."""
        return context["ti"].get_dr_count(
            dag_id=self.training_dag_id,
            run_ids=[self.retraining_run_id],
            states=IN_FLIGHT_STATES,
        )

    def decide(self, summary: Any, context: Context) -> dict[str, Any]:
        """The branch to follow and why, from the summary and the training DAG's runs."""
        status, share, threshold, period_end = self._validated(summary)
        result = {"status": status, "drift_share": share, "threshold": threshold}

        def outcome(branch: str, reason: str, detail: str) -> dict[str, Any]:
            return {"decision": branch, "reason": reason, "detail": detail, **result}

        skip = self.skip_task_id
        if status == "insufficient_data" or not summary.get("sufficient") or share is None:
            rows = [(summary.get(side) or {}).get("rows") for side in ("reference", "current")]
            return outcome(
                skip,
                "insufficient_data",
                f"reference/current rows {rows[0]}/{rows[1]}, at least {summary.get('min_rows')} "
                "needed on each side",
            )
        if share < threshold:
            return outcome(skip, "below_threshold", f"drift share {share} < {threshold}")
        return self.retrain_unless_held(
            context,
            outcome,
            last=summary.get("last_drift_retraining"),
            day=period_end,
            day_name="period_end ",
            why=f"drift share {share} >= {threshold}",
        )

    def retrain_unless_held(
        self, context: Context, outcome, *, last: Any, day: date, day_name: str, why: str
    ) -> dict[str, Any]:
        """The rule is due (``why``): trigger the retraining unless the last one of this reason
        (``last``: ``{"as_of", "run_id"}``) is within the cooldown before ``day``, the run is a
        backfill that did not ask, or the retraining run is already in flight."""
        skip = self.skip_task_id
        if last:
            last_date = self._date(last.get("as_of"), f"last_{self.subject}_retraining.as_of")
            if day - last_date < self.cooldown:
                return outcome(
                    skip,
                    "cooldown",
                    f"{self.subject} retraining {last.get('run_id')} as of {last_date} is "
                    f"{(day - last_date).days} days before {day_name}{day}, within the "
                    f"cooldown of {self.cooldown.days} days ({why})",
                )
        held = self.backfill_hold(context)
        if held:
            return outcome(skip, "backfill", f"{why}, but {held}")
        if self.in_flight(context):
            return outcome(
                skip,
                "in_flight",
                f"{self.training_dag_id} run {self.retraining_run_id} is already queued/running",
            )
        return outcome(self.trigger_task_id, self.subject, f"{why}, retraining due")

    def _validated(self, summary: Any) -> tuple[str, float | None, float, date]:
        if not isinstance(summary, dict):
            raise AirflowException(f"Invalid drift summary {self.summary_path}: not a JSON object")
        status = summary.get("status")
        if status not in STATUSES:
            raise AirflowException(
                f"Invalid drift summary {self.summary_path}: status {status!r} is not one of "
                f"{STATUSES}"
            )
        threshold = self.threshold if self.threshold is not None else summary.get("threshold")
        share = summary.get("drift_share")
        if not isinstance(threshold, int | float) or not isinstance(share, int | float | None):
            raise AirflowException(
                f"Invalid drift summary {self.summary_path}: threshold {threshold!r} and "
                f"drift_share {share!r} must be numbers (drift_share may be null)"
            )
        return status, share, threshold, self._date(summary.get("period_end"), "period_end")

    def _date(self, value: Any, name: str) -> date:
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError as error:
            raise AirflowException(
                f"Invalid drift summary {self.summary_path}: {name} {value!r} is not a date"
            ) from error
