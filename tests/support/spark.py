"""Spark fixtures besides the session itself (tests/conftest.py). Registered by
``pytest_plugins`` in tests/conftest.py."""

from __future__ import annotations

import contextlib

import pytest


@pytest.fixture(scope="session")
def spark_codegen(spark):
    """``with spark_codegen():`` Spark's code generation (the cluster default) for a test's
    heavier queries, instead of the interpreter of TEST_SPARK_CONF (tests/conftest.py): from a
    few hundred thousand rows on, compiled code wins (the drift-year simulation's 470,000
    events, docs/performance.md)."""
    keys = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}

    @contextlib.contextmanager
    def codegen():
        before = {key: spark.conf.get(key, None) for key in keys}
        for key, value in keys.items():
            spark.conf.set(key, value)
        try:
            yield
        finally:
            for key, value in before.items():
                if value is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, value)

    return codegen
