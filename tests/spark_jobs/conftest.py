"""Fixtures of the job tests: inline silver events and a fresh schema per test."""

from __future__ import annotations

import uuid

import mlflow
import pytest

from tests.spark_jobs.rows import SILVER_SCHEMA


@pytest.fixture
def silver_events(spark):
    def build(rows: list[tuple]):
        return spark.createDataFrame(rows, SILVER_SCHEMA)

    return build


@pytest.fixture
def schema_name():
    """A fresh schema per test, so tests never see each other's tables."""
    return f"t_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def tracking(tmp_path_factory):
    """A real MLflow tracking store and registry on SQLite, artifacts in a temporary folder."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = f"/test/propensity-{uuid.uuid4().hex[:6]}"
    mlflow.create_experiment(experiment, artifact_location=str(root / "artifacts"))
    yield experiment
    mlflow.set_tracking_uri(previous)
