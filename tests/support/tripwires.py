"""Spark and MLflow as trip wires: a job entry point called in process fails the test when it
uses either before its arguments are validated (tests/security/test_sql_parameters.py,
tests/security/test_path_parameters.py)."""

from __future__ import annotations

import mlflow
import pytest
from pyspark import SparkContext
from pyspark.sql import SparkSession

TRIPPED = "before the arguments were validated"


class Tripwire:
    """Stands in for Spark / MLflow: any use fails the test, naming what was used."""

    def __init__(self, what: str):
        self._what = what

    def __getattr__(self, name: str):
        raise AssertionError(f"{self._what} used ({name}) {TRIPPED}")

    def __call__(self, *args, **kwargs):
        raise AssertionError(f"{self._what} called {TRIPPED}")


def set_tripwires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any use of a Spark session, the JVM or MLflow fail with an ``AssertionError``."""
    monkeypatch.setattr(SparkSession.Builder, "getOrCreate", lambda self: Tripwire("Spark"))
    # pyspark.sql.functions reach the JVM through the active context.
    monkeypatch.setattr(SparkContext, "_active_spark_context", Tripwire("Spark"))

    def mlflow_used(*args, **kwargs):
        raise AssertionError(f"MLflow used {TRIPPED}")

    monkeypatch.setattr(mlflow.MlflowClient, "__init__", mlflow_used)
    for name in ("set_experiment", "start_run", "set_tracking_uri", "get_tracking_uri"):
        monkeypatch.setattr(mlflow, name, mlflow_used)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # never reached
