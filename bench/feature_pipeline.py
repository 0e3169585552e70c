"""Benchmarks 2 and 3: the daily feature pipeline's cost against history and against volume.

2. **Incremental cost.** Generated days are landed into bronze and silver; then the daily
   feature job of a date with 5 days of history and of a date with 60 days of history are timed
   side by side (alternating, repeated). The same two dates are timed for a naive baseline that
   recomputes the whole feature table from all history every day (the bulk job over
   ``[first day, ds]``). Target: ours(60 days) / ours(5 days) <= 1.3, while the baseline grows
   with history.
3. **Scaling.** One day of the pipeline (ingest, silver MERGE, daily features) after a week of
   history, at 1x, 4x and 16x events per day. Target: 16x data in at most 12x the time.

Both call the job functions in one local SparkSession (the warm cluster's situation), so the
figures are Spark work, not process start-up.
"""

from __future__ import annotations

import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.common import Comparison, Figure

CATALOG = "spark_catalog"
START = date(2019, 10, 1)


def _session(state: Path):
    from local_workspace.spark_runtime import LocalLayout, build_session

    return build_session(LocalLayout(state=state))


def _days(n: int, start: date = START) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def _land(
    spark, landing: Path, days: list[str], events_per_day: int, schema: str, bulk: bool = False
) -> None:
    """Generate, ingest and merge ``days`` into ``<schema>_bronze`` / ``<schema>``: day by day,
    as the daily runs leave the tables, or with ``bulk`` in one range as the first load of
    history (``load_history.py``) does, which a test checks gives the same tables."""
    from generate_events import main as generate

    from clickstream.history import silver_range
    from clickstream.ingest import ingest, ingest_range
    from clickstream.silver import build_silver_events

    users = str(events_per_day // 6)
    generate(["--start-date", days[0], "--days", str(len(days)), "--landing-dir", str(landing),
              "--events-per-day", str(events_per_day), "--users", users])  # fmt: skip
    if bulk:
        ingest_range(spark, start=days[0], end=days[-1], catalog=CATALOG,
                     landing_dir=str(landing), schema=f"{schema}_bronze")  # fmt: skip
        silver_range(spark, start=days[0], end=days[-1], catalog=CATALOG,
                     bronze_schema=f"{schema}_bronze", silver_schema=schema)  # fmt: skip
        return
    for ds in days:
        ingest(spark, ds=ds, catalog=CATALOG, landing_dir=str(landing), schema=f"{schema}_bronze")
        build_silver_events(
            spark, ds=ds, catalog=CATALOG, bronze_schema=f"{schema}_bronze", silver_schema=schema
        )


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def incremental(spark, root: Path, repeats: int, events_per_day: int) -> tuple[list, list]:
    from clickstream.features import build_features

    days = _days(61)
    print(f"  landing {len(days)} days of {events_per_day} events", flush=True)
    _land(spark, root / "landing", days, events_per_day, "inc")
    early, late = days[5], days[60]  # 5 and 60 days of history before the date

    def ours(ds: str) -> None:
        build_features(spark, start=ds, end=ds, catalog=CATALOG, silver_schema="inc")

    def naive(ds: str) -> None:
        build_features(spark, start=days[0], end=ds, catalog=CATALOG, silver_schema="inc")

    figures = {
        key: Figure(f"{label}, {history} days of history", "s")
        for key, label, history in [
            ("ours5", "daily job", 5), ("ours60", "daily job", 60),
            ("naive5", "full recompute", 5), ("naive60", "full recompute", 60),
        ]
    }  # fmt: skip
    ours(early)  # warm-up: JIT, caches, table metadata
    for i in range(repeats):
        figures["ours5"].samples.append(_timed(lambda: ours(early)))
        figures["ours60"].samples.append(_timed(lambda: ours(late)))
        figures["naive5"].samples.append(_timed(lambda: naive(early)))
        figures["naive60"].samples.append(_timed(lambda: naive(late)))
        print(
            "  repeat", i + 1, {k: round(f.samples[-1], 2) for k, f in figures.items()}, flush=True
        )
    ours_ratio = Comparison(
        benchmark="2. incremental cost",
        description="daily feature job, 60 / 5 days of history",
        numerator=figures["ours60"],
        denominator=figures["ours5"],
        target="<= 1.3x",
    )
    ours_ratio.meets_target = ours_ratio.ratio <= 1.3
    naive_ratio = Comparison(
        benchmark="2. incremental cost (baseline)",
        description="naive full recompute, 60 / 5 days of history",
        numerator=figures["naive60"],
        denominator=figures["naive5"],
        target="grows with history",
        notes=f"{events_per_day} events/day",
    )
    naive_ratio.meets_target = None
    return [ours_ratio, naive_ratio], list(figures.values())


def scaling(spark, root: Path, repeats: int, events_per_day: int) -> tuple[list, list]:
    from clickstream.features import build_features
    from clickstream.ingest import ingest
    from clickstream.silver import build_silver_events

    figures = {}
    for factor in (1, 4, 16):
        volume = events_per_day * factor
        schema = f"scale{factor}"
        history = _days(8)
        print(f"  {factor}x: landing {len(history)} days of {volume} events", flush=True)
        landing = root / f"landing{factor}"
        _land(spark, landing, history, volume, schema)
        ds = history[-1]

        def pipeline(ds=ds, landing=landing, schema=schema) -> None:
            ingest(spark, ds=ds, catalog=CATALOG, landing_dir=str(landing),
                   schema=f"{schema}_bronze")  # fmt: skip
            build_silver_events(spark, ds=ds, catalog=CATALOG, bronze_schema=f"{schema}_bronze",
                                silver_schema=schema)  # fmt: skip
            build_features(spark, start=ds, end=ds, catalog=CATALOG, silver_schema=schema)

        figure = Figure(f"one day of the pipeline at {factor}x ({volume} events/day)", "s")
        for _ in range(repeats):
            figure.samples.append(_timed(pipeline))
        print(f"  {factor}x: {figure.cell()}", flush=True)
        figures[factor] = figure
    comparison = Comparison(
        benchmark="3. scaling",
        description="one pipeline day, 16x / 1x events per day",
        numerator=figures[16],
        denominator=figures[1],
        target="<= 12x",
        notes=f"4x / 1x: {figures[4].median / figures[1].median:.1f}x",
    )
    comparison.meets_target = comparison.ratio <= 12
    return [comparison], list(figures.values())


def run(repeats: int = 3, events_per_day: int = 20000) -> tuple[list, list]:
    repeats = max(1, min(repeats, 3))  # each repeat is minutes of Spark work at 16x
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        root = Path(tmp)
        spark = _session(root / "state")
        try:
            c2, f2 = incremental(spark, root / "inc", repeats, events_per_day)
            c3, f3 = scaling(spark, root / "scale", repeats, events_per_day)
        finally:
            spark.stop()
    return c2 + c3, f2 + f3
