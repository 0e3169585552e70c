"""Benchmark 14: what silver's re-delivery handling and the commit check cost a daily run.

The silver job of a date now reads the date's bronze through ``ingest.committed_bronze`` (its
count and fingerprint against the ingest log, at one table version) and, before its MERGE,
looks for silver rows of the date that its bronze no longer holds (``silver._redelivered``: a
read of silver's rows of that ingest date). The MERGE it replaces only inserted and updated.

A history of ``HISTORY_DAYS`` generated days at 1x (``EVENTS_PER_DAY``) is loaded, the next day
ingested and merged once; then the silver run of that day is timed, side by side, taking turns:

* **ours**: ``build_silver_events`` as the daily job runs it;
* **before**: the MERGE of the previous release (bronze read directly, no re-delivery step).

Both are reruns of a date already in silver (its rows are matched, none changes), so they do
the same MERGE and the ratio is the added reads. Reported: ours / before (target <= 1.3x).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import Comparison, Figure, local_session
from local.simulations.landing import CATALOG, generate_days, load_days, synthetic_days

EVENTS_PER_DAY = 20000  # 1x
HISTORY_DAYS = 30
SCHEMA = "bench_redelivery"


def _before(spark, ds: str) -> None:
    """The silver run of the previous release: the date's bronze read as it is, cleaned and
    merged (insert new events, an earlier delivery takes over), nothing else."""
    from pyspark.sql import functions as F

    from clickstream.core.contracts import BRONZE_EVENTS, SILVER_EVENTS, check_frame
    from clickstream.pipeline.silver import clean, merge_into_silver

    day = spark.table(BRONZE_EVENTS.name(CATALOG, f"{SCHEMA}_bronze")).where(
        F.col("ingest_date") == F.lit(ds).cast("date")
    )
    rows = check_frame(clean(day), SILVER_EVENTS).persist()
    try:
        dates = sorted(
            r["event_date"].isoformat() for r in rows.select("event_date").distinct().collect()
        )
        merge_into_silver(spark, rows, SILVER_EVENTS.name(CATALOG, SCHEMA), dates)
    finally:
        rows.unpersist()


def _ours(spark, ds: str) -> None:
    from clickstream.pipeline.silver import build_silver_events

    build_silver_events(
        spark, ds=ds, catalog=CATALOG, bronze_schema=f"{SCHEMA}_bronze", silver_schema=SCHEMA
    )


def run(repeats: int = 5) -> tuple[list, list]:
    repeats = max(2, repeats)
    days = synthetic_days(HISTORY_DAYS + 1)
    history, ds = days[:-1], days[-1]
    with tempfile.TemporaryDirectory(prefix="bench-redelivery-") as tmp:
        spark = local_session(Path(tmp) / "state")
        try:
            landing = Path(tmp) / "landing"
            print(f"  {len(days)} days of {EVENTS_PER_DAY} events", flush=True)
            generate_days(landing, days, EVENTS_PER_DAY)
            load_days(spark, landing, history, SCHEMA, bulk=True)
            load_days(spark, landing, [ds], SCHEMA)
            figures = {
                "ours": Figure(f"silver run of a day, with the re-delivery step ({ds})", "s"),
                "before": Figure("silver run of a day, the previous release's MERGE", "s"),
            }
            runs = {"ours": _ours, "before": _before}
            for i in range(repeats):
                order = ["ours", "before"] if i % 2 == 0 else ["before", "ours"]
                for name in order:
                    started = time.perf_counter()
                    runs[name](spark, ds)
                    figures[name].samples.append(time.perf_counter() - started)
                print("  repeat", i + 1, {k: round(f.samples[-1], 2) for k, f in figures.items()})
            rows = spark.table(f"{CATALOG}.{SCHEMA}.events").count()
        finally:
            spark.stop()
    comparison = Comparison(
        benchmark="14. silver re-delivery step",
        description="silver run of a day: with the commit check and re-delivery step / before",
        numerator=figures["ours"],
        denominator=figures["before"],
        target="<= 1.3x",
        notes=f"{HISTORY_DAYS} days of history at 1x, {rows} silver rows; reruns of the day",
    )
    comparison.meets_target = comparison.ratio <= 1.3
    return [comparison], list(figures.values())
