"""Fixtures of the reliability tests: a few generated days of click-stream in a Volume, their
bronze tables ingested day by day (the reference a fault or a rerun must end at)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.landing import DAYS, LANDING, ingest


@pytest.fixture(scope="session")
def volumes(tmp_path_factory):
    """A Volumes root with generated REES46 days (a few hundred events each) at LANDING."""
    from generate_events import main as generate_main

    root = tmp_path_factory.mktemp("reliability") / "volumes"
    generate_main(
        [
            "--start-date",
            DAYS[0],
            "--days",
            str(len(DAYS)),
            "--users",
            "60",
            "--events-per-day",
            "250",
            "--seed",
            "5",
            "--landing-dir",
            str(root / LANDING.removeprefix("/Volumes/")),
        ]
    )
    return root


@pytest.fixture(scope="session")
def landing(volumes):
    """The local folder behind LANDING: ``<ds>/events.csv`` per day."""
    return volumes / LANDING.removeprefix("/Volumes/")


@pytest.fixture(scope="session")
def bronze_sequential(spark, volumes):
    """Every day ingested in date order, one job run each: the reference bronze schema."""
    schema = "rel_bronze_sequential"
    for ds in DAYS:
        ingest(volumes, schema, ds)
    return schema


@pytest.fixture
def new_schema():
    """Makes fresh schema names, so tests never see each other's tables."""
    return lambda prefix="r": f"{prefix}_{uuid.uuid4().hex[:8]}"
