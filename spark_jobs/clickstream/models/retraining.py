"""When the system last retrained, and why: the cooldowns of both automatic reasons read this.

A training is a parent MLflow run of the propensity experiment tagged ``reason`` (one of
:data:`RETRAINING_REASONS`, set by ``model_training``'s conf) and ``as_of`` (the data date it
trained as of). Cooldowns are measured in data time: a drift check of an old month in a backfill
compares its period with the ``as_of`` of the last drift retraining, never with the wall-clock
date a triggered run got as its logical date.
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

RETRAINING_REASONS = ("schedule", "drift", "performance", "manual")  # model_training's


def last_retraining(client: MlflowClient, experiment: str, reason: str) -> dict[str, str] | None:
    """The latest finished training with ``reason``: ``{"as_of", "run_id"}`` or None.

    Dated by its ``as_of`` tag, else (runs from before the tag existed) its ``logical_date``
    tag; candidate runs (nested, same tags) and failed or unfinished trainings do not count.
    """
    if reason not in RETRAINING_REASONS:
        raise ValueError(f"reason {reason!r} is not one of {RETRAINING_REASONS}")
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.reason = '{reason}' AND attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=500,
    )
    latest = None
    for run in runs:
        tags = run.data.tags
        if "mlflow.parentRunId" in tags:
            continue  # a candidate run carries the same tags
        day = (tags.get("as_of") or tags.get("logical_date") or "")[:10]
        if day and (latest is None or day > latest["as_of"]):
            latest = {"as_of": day, "run_id": run.info.run_id}
    return latest
