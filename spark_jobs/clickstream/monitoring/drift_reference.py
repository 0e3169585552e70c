"""The drift reference: the current champion and the training window it was trained on.

``models:/<name>@champion`` is resolved to a version, and the version's source run (the winning
candidate's nested run, which carries the training's tags, as its parent run does) names the
window in its tags ``train_window_start`` / ``train_window_end``. The drift job
(:mod:`clickstream.monitoring.drift`) compares a period with the feature rows of those dates.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from clickstream.core.jobs import JobError
from clickstream.core.schema import parse_ds
from clickstream.models.registry import CHAMPION


@dataclass(frozen=True)
class Reference:
    """The champion and its training window (the drift reference)."""

    model_name: str
    version: str
    run_id: str
    start: str
    end: str


def champion_reference(client: MlflowClient, model_name: str) -> Reference:
    """``models:/<name>@champion`` and the training window its source run names."""
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as error:
        if error.error_code not in (
            "RESOURCE_DOES_NOT_EXIST",
            "INVALID_PARAMETER_VALUE",
            "NOT_FOUND",
        ):
            raise
        raise JobError(
            f"no champion for {model_name}: run model_training first (drift is measured against "
            "the champion's training window)"
        ) from None
    run_id = version.run_id or version.tags.get("run_id", "")
    # The version points at the winning candidate's nested run; it carries the training's tags,
    # as its parent run does, and so does the version itself (train_models sets all three).
    sources: list[dict[str, str]] = []
    if run_id:
        run = client.get_run(run_id)
        sources.append(run.data.tags)
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent:
            sources.append(client.get_run(parent).data.tags)
    sources.append(version.tags)
    for tags in sources:
        if tags.get("train_window_start") and tags.get("train_window_end"):
            start, end = parse_ds(tags["train_window_start"]), parse_ds(tags["train_window_end"])
            return Reference(model_name, str(version.version), run_id, start, end)
    raise JobError(
        f"champion v{version.version} of {model_name} names no training window (tags "
        f"train_window_start/train_window_end on run {run_id or '?'}): it was not registered "
        "by train_models"
    )
