"""Fixtures of the job tests: inline silver events and a fresh schema per test."""

from __future__ import annotations

import uuid

import pytest

from tests.support.rows import SILVER_SCHEMA


@pytest.fixture
def silver_events(spark):
    def build(rows: list[tuple]):
        return spark.createDataFrame(rows, SILVER_SCHEMA)

    return build


@pytest.fixture
def schema_name():
    """A fresh schema per test, so tests never see each other's tables."""
    return f"t_{uuid.uuid4().hex[:8]}"
