"""Synthetic days landed and loaded into bronze and silver, as the daily runs leave them.

``generate_events.py`` writes the days' REES46 CSV files into a landing folder, then the real
ingest and silver code loads them into ``<schema>_bronze`` / ``<schema>`` of the session's
catalog: day by day, as the daily runs do, or in one range, as the first load of history
(``load_history.py``) does. Shared by the benchmarks (``bench/``) and the tests of the
single-node reference (``tests/local/simulations/``).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

CATALOG = "spark_catalog"
START = date(2019, 10, 1)


def synthetic_days(n: int, start: date = START) -> list[str]:
    """``n`` consecutive dates from ``start``, as ``YYYY-MM-DD``."""
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def generate_days(landing: Path, days: list[str], events_per_day: int) -> None:
    """Write ``days`` (consecutive) of ``events_per_day`` events into ``landing``, one user per
    six events a day."""
    from generate_events import main as generate

    users = str(events_per_day // 6)
    generate(
        [
            "--start-date",
            days[0],
            "--days",
            str(len(days)),
            "--landing-dir",
            str(landing),
            "--events-per-day",
            str(events_per_day),
            "--users",
            users,
        ]
    )


def load_days(spark, landing: Path, days: list[str], schema: str, bulk: bool = False) -> None:
    """Ingest and merge the landed ``days`` into ``<schema>_bronze`` / ``<schema>``: day by
    day, as the daily runs leave the tables, or with ``bulk`` in one range as the first load of
    history (``load_history.py``) does, which a test checks gives the same tables."""
    from clickstream.pipeline.history import silver_range
    from clickstream.pipeline.ingest import ingest, ingest_range
    from clickstream.pipeline.silver import build_silver_events

    if bulk:
        ingest_range(
            spark,
            start=days[0],
            end=days[-1],
            catalog=CATALOG,
            landing_dir=str(landing),
            schema=f"{schema}_bronze",
        )
        silver_range(
            spark,
            start=days[0],
            end=days[-1],
            catalog=CATALOG,
            bronze_schema=f"{schema}_bronze",
            silver_schema=schema,
        )
        return
    for ds in days:
        ingest(spark, ds=ds, catalog=CATALOG, landing_dir=str(landing), schema=f"{schema}_bronze")
        build_silver_events(
            spark, ds=ds, catalog=CATALOG, bronze_schema=f"{schema}_bronze", silver_schema=schema
        )


def land_synthetic_days(
    spark, landing: Path, days: list[str], events_per_day: int, schema: str, bulk: bool = False
) -> None:
    """Generate ``days`` into ``landing`` and load them (see :func:`load_days`)."""
    generate_days(landing, days, events_per_day)
    load_days(spark, landing, days, schema, bulk=bulk)
