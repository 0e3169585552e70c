"""Wait for the performance job's summary, then branch to retraining (``reason=performance``).

The second reason to retrain, next to drift (:mod:`ecom_plugins.drift_branch`, whose waiting,
branching and in-flight check this sensor shares). The performance job
(``spark_jobs/monitor_performance.py``) writes a JSON summary for the score date whose labels
have just closed::

    {"logical_date", "decision_date", "horizon_days",
     "status": "healthy" | "decayed" | "insufficient_data" | "no_scores",
     "decay_reasons": [...], "model_name", "model_version", "champion_version",
     "metrics": {"roc_auc", "ece", "labelled_rows", ...} | null,
     "training": {"roc_auc", "ece", "run_id"},
     "thresholds": {"max_ece", "max_auc_drop", "min_rows"},
     "last_performance_retraining": {"as_of": "YYYY-MM-DD", "run_id"} | null, ...}

Retraining is triggered (branch ``trigger_task_id``) only when all of these hold, otherwise the
run follows ``skip_task_id``:

1. judged: the date had enough labelled rows of both classes (not ``insufficient_data`` /
   ``no_scores``);
2. decayed: its ECE is above ``max_ece``, or its ROC AUC is below the version's validation
   ROC AUC by more than ``max_auc_drop`` (the operator's thresholds, else the summary's);
3. not superseded: the version that served the date is still the champion (a newer champion,
   whatever promoted it, has not been measured yet);
4. cooldown: no performance retraining within ``cooldown`` before the logical date (dates
   from the data, never the wall clock);
5. nothing in flight: the training DAG has no queued or running run ``retraining_run_id``.

The decision is logged in one line and pushed to XCom ``performance_decision``:
``{"decision", "reason", "detail", "status", "model_version", "roc_auc", "ece", ...}`` with
``reason`` one of ``performance``, ``insufficient_data``, ``healthy``, ``superseded``,
``cooldown``, ``backfill`` (a backfill without ``{"retrain": true}`` in its run conf: the
drift sensor's rule), ``in_flight``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from ecom_plugins.drift_branch import DriftBranchSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

DECISION_KEY = "performance_decision"
STATUSES = ("healthy", "decayed", "insufficient_data", "no_scores")


def decay_reasons(
    metrics: dict[str, Any], training: dict[str, Any], *, max_ece: float, max_auc_drop: float
) -> list[str]:
    """The job's rule (``clickstream.monitoring.performance.decay_reasons``), Airflow side:
    the plugins do not import the Spark job library. A test holds the two to the same answers."""
    reasons = []
    ece, auc, trained_auc = metrics.get("ece"), metrics.get("roc_auc"), training.get("roc_auc")
    if ece is not None and ece > max_ece:
        reasons.append(f"ECE {ece:.4f} > {max_ece}")
    if auc is not None and trained_auc is not None and auc < trained_auc - max_auc_drop:
        reasons.append(f"ROC AUC {auc:.4f} < validation ROC AUC {trained_auc:.4f} - {max_auc_drop}")
    return reasons


class PerformanceBranchSensor(DriftBranchSensor):
    """Wait for the performance summary at ``summary_path``, then follow one of two branches.

    :param summary_path: Volume path of the performance job's JSON summary (templated).
    :param max_ece: ECE above which a date has decayed (default: the summary's).
    :param max_auc_drop: ROC AUC drop below the version's validation ROC AUC beyond which a
        date has decayed (default: the summary's).
    :param cooldown: minimum time between two performance retrainings, in data time.
    :param training_dag_id: the DAG the trigger task starts.
    :param retraining_run_id: run id the trigger task gives the training run (templated).
    """

    subject = "performance"
    decision_key = DECISION_KEY
    ui_color = "#fdf0e8"

    def __init__(
        self,
        *,
        max_ece: float | None = None,
        max_auc_drop: float | None = None,
        cooldown: timedelta = timedelta(days=14),
        retraining_run_id: str = "performance__{{ ds }}",
        **kwargs: Any,
    ) -> None:
        super().__init__(cooldown=cooldown, retraining_run_id=retraining_run_id, **kwargs)
        self.max_ece = max_ece
        self.max_auc_drop = max_auc_drop

    def log_decision(self, decision: dict[str, Any]) -> None:
        self.log.info(
            "Performance decision: %(decision)s, reason %(reason)s: %(detail)s "
            "(status %(status)s, v%(model_version)s, ROC AUC %(roc_auc)s, ECE %(ece)s)",
            decision,
        )

    def decide(self, summary: Any, context: Context) -> dict[str, Any]:
        """The branch to follow and why, from the summary and the training DAG's runs."""
        status, logical_date, max_ece, max_auc_drop = self._validated(summary)
        metrics = summary.get("metrics") or {}
        training = summary.get("training") or {}
        version, champion = summary.get("model_version"), summary.get("champion_version")
        result = {
            "status": status,
            "decision_date": summary.get("decision_date"),
            "model_version": version,
            "champion_version": champion,
            "roc_auc": metrics.get("roc_auc"),
            "ece": metrics.get("ece"),
            "training_roc_auc": training.get("roc_auc"),
            "max_ece": max_ece,
            "max_auc_drop": max_auc_drop,
        }

        def outcome(branch: str, reason: str, detail: str) -> dict[str, Any]:
            return {"decision": branch, "reason": reason, "detail": detail, **result}

        skip = self.skip_task_id
        if status in ("insufficient_data", "no_scores") or metrics.get("roc_auc") is None:
            minimum = (summary.get("thresholds") or {}).get("min_rows")
            return outcome(
                skip,
                "insufficient_data",
                f"score date {summary.get('decision_date')}: {metrics.get('labelled_rows', 0)} "
                f"labelled rows (at least {minimum} of both classes needed)",
            )
        reasons = decay_reasons(metrics, training, max_ece=max_ece, max_auc_drop=max_auc_drop)
        if not reasons:
            return outcome(
                skip,
                "healthy",
                f"ECE {metrics.get('ece')} <= {max_ece} and ROC AUC {metrics.get('roc_auc')} "
                f"within {max_auc_drop} of validation {training.get('roc_auc')}",
            )
        if champion is not None and str(version) != str(champion):
            return outcome(
                skip,
                "superseded",
                f"v{version} served {summary.get('decision_date')} but the champion is now "
                f"v{champion}: its scores are not measured yet ({'; '.join(reasons)})",
            )
        return self.retrain_unless_held(
            context,
            outcome,
            last=summary.get("last_performance_retraining"),
            day=logical_date,
            day_name="",
            why="; ".join(reasons),
        )

    def _validated(self, summary: Any) -> tuple[str, date, float, float]:
        if not isinstance(summary, dict):
            raise AirflowException(
                f"Invalid performance summary {self.summary_path}: not a JSON object"
            )
        status = summary.get("status")
        if status not in STATUSES:
            raise AirflowException(
                f"Invalid performance summary {self.summary_path}: status {status!r} is not one "
                f"of {STATUSES}"
            )
        thresholds = summary.get("thresholds") or {}
        max_ece = self.max_ece if self.max_ece is not None else thresholds.get("max_ece")
        max_auc_drop = (
            self.max_auc_drop if self.max_auc_drop is not None else thresholds.get("max_auc_drop")
        )
        if not isinstance(max_ece, int | float) or not isinstance(max_auc_drop, int | float):
            raise AirflowException(
                f"Invalid performance summary {self.summary_path}: thresholds max_ece "
                f"{max_ece!r} and max_auc_drop {max_auc_drop!r} must be numbers"
            )
        logical_date = self._date(summary.get("logical_date"), "logical_date")
        return status, logical_date, float(max_ece), float(max_auc_drop)

    def _date(self, value: Any, name: str) -> date:
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError as error:
            raise AirflowException(
                f"Invalid performance summary {self.summary_path}: {name} {value!r} is not a date"
            ) from error
