"""``last_retraining``: what both cooldowns (drift and performance) read from MLflow."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from clickstream.models.retraining import RETRAINING_REASONS, last_retraining


@pytest.mark.parametrize("reason", ["drift", "performance"])
def test_the_last_retraining_is_the_latest_finished_training_by_data_date(
    tmp_path, tracking, reason
):
    client = MlflowClient()
    name = f"/test/retraining-{uuid.uuid4().hex[:6]}"
    assert last_retraining(client, name, reason) is None  # no such experiment
    experiment = client.create_experiment(name, artifact_location=str(tmp_path))
    assert last_retraining(client, name, reason) is None  # no training yet

    def run(as_of: str | None, why: str, status="FINISHED", parent=None, logical="2026-12-07"):
        tags = {"reason": why, "logical_date": logical}
        if as_of:
            tags["as_of"] = as_of
        if parent:
            tags["mlflow.parentRunId"] = parent
        created = client.create_run(experiment, tags=tags)
        client.set_terminated(created.info.run_id, status=status)
        return created.info.run_id

    expected = run("2019-10-20", reason)
    # Started later but of an older data date (a backfill's retraining): not the latest.
    run("2019-09-30", reason, logical="2026-12-08")
    other = "schedule" if reason != "schedule" else "manual"
    later = run("2019-10-25", other)  # another reason starts no cooldown of this one
    run("2019-10-26", reason, parent=later)  # a candidate run: same tags, not a training
    run("2019-10-27", reason, status="FAILED")  # a failed training does not count
    # Dated by as_of (data time), never by a triggered run's wall-clock logical date.
    assert last_retraining(client, name, reason) == {"as_of": "2019-10-20", "run_id": expected}
    # A run from before the as_of tag existed is dated by its logical date.
    legacy = run(None, reason, logical="2019-11-02")
    assert last_retraining(client, name, reason) == {"as_of": "2019-11-02", "run_id": legacy}


def test_an_unknown_reason_is_refused(tracking):
    with pytest.raises(ValueError, match="not one of"):
        last_retraining(MlflowClient(), "/test/any", "whim")
    assert set(RETRAINING_REASONS) >= {"drift", "performance"}
