"""Benchmarks 2 and 3: the daily feature pipeline's cost against history and against volume.

2. **Incremental cost.** The same generated days are loaded as a 5-day and a 60-day history;
   then each history receives its next day (ingest and silver MERGE) and that day's feature
   job is timed, side by side (alternating, repeated, a new day each time). The same dates are
   timed for a naive baseline that recomputes the whole feature table from all the events every
   day (``compute_features`` over ``[first day, ds]``). Target: ours(60 days) / ours(5 days)
   <= 1.3, while the baseline grows with history.
3. **Scaling.** One day of the pipeline (ingest, silver MERGE, daily features) after a week of
   history, at 1x, 4x and 16x events per day, a new day per repeat. Target: 16x data in at most
   12x the time.

Both call the job functions in one local SparkSession (the warm cluster's situation), so the
figures are Spark work, not process start-up.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import Comparison, Figure, local_session
from local.simulations.landing import CATALOG, generate_days, load_days, synthetic_days

EVENTS_PER_DAY = 20000  # 1x


def write_features_from_events(spark, schema: str, start: str, end: str) -> None:
    """The feature rows of [start, end] computed from silver's events, without the kept daily
    activity (the feature job before it), written as ``build_features`` writes them."""
    from clickstream.core.contracts import USER_FEATURES, write_partition
    from clickstream.pipeline.features import compute_features, feature_dates_predicate

    events = spark.table(f"{CATALOG}.{schema}.events")
    dates = feature_dates_predicate(start, end)
    write_partition(
        spark, compute_features(events, start, end), USER_FEATURES, CATALOG, dates, schema
    )


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _quiet(_message: str) -> None:
    """Progress lines of the jobs are not printed inside a timed run."""


def _daily_runs(
    spark,
    root: Path,
    repeats: int,
    events_per_day: int,
    histories: tuple[int, ...],
    with_naive: bool,
) -> tuple[dict[str, Figure], list[Figure]]:
    """Histories of the same generated days (``histories`` days each), each loaded in bulk and
    given its first feature run; then, ``repeats`` times, each history receives its next day
    (ingest and silver MERGE, not timed) and that day's feature job is timed: the daily job as
    it runs after the day's data arrived, refresh of the kept activity included. The job as it
    was before the kept activity (from the events) is timed on the same day, the two taking
    turns; ``with_naive`` adds a full recompute of every feature date from all the events."""
    from clickstream.pipeline.features import build_features

    repeats += repeats % 2  # an even number of turns for the before/after pair
    days = synthetic_days(max(histories) + repeats)
    landing = root / "landing"
    print(f"  generating {len(days)} days of {events_per_day} events", flush=True)
    generate_days(landing, days, events_per_day)

    def ours(schema: str, ds: str) -> None:
        build_features(
            spark, start=ds, end=ds, catalog=CATALOG, silver_schema=schema, progress=_quiet
        )

    def before(schema: str, ds: str) -> None:
        """The daily job before the kept activity: ``[ds, ds]`` reduced from the events."""
        write_features_from_events(spark, schema, ds, ds)

    def naive(schema: str, ds: str) -> None:
        """Every feature date from the first day to ``ds`` recomputed from all the events."""
        write_features_from_events(spark, schema, days[0], ds)

    kinds = [("ours", "daily job"), ("before", "daily job from the events (before)")]
    kinds += [("naive", "full recompute")] if with_naive else []
    figures = {
        f"{kind}{h}": Figure(f"{label}, {h} days of history", "s")
        for kind, label in kinds
        for h in histories
    }
    first_run = []
    for history in histories:
        schema = f"inc{history}"
        print(f"  {schema}: loading {history} days in bulk, first feature run", flush=True)
        load_days(spark, landing, days[:history], schema, bulk=True)
        figure = Figure(f"first feature run (activity built), {history} days", "s")
        figure.samples.append(_timed(lambda s=schema, d=days[history - 1]: ours(s, d)))
        first_run.append(figure)
    for i in range(repeats):
        for history in histories:
            schema, ds = f"inc{history}", days[history + i]
            load_days(spark, landing, [ds], schema)  # the day arrives: ingest + silver, not timed
            # The first job after the day's load meets a cold silver snapshot: take turns.
            jobs = [(f"ours{history}", ours), (f"before{history}", before)]
            jobs = jobs if i % 2 == 0 else jobs[::-1]
            jobs += [(f"naive{history}", naive)] if with_naive else []
            for name, job in jobs:
                figures[name].samples.append(_timed(lambda s=schema, d=ds, job=job: job(s, d)))
        print(
            "  repeat", i + 1, {k: round(f.samples[-1], 2) for k, f in figures.items()}, flush=True
        )
    return figures, first_run


def _before_after(figures: dict[str, Figure], history: int) -> Comparison:
    return Comparison(
        benchmark="2. incremental cost (before/after)",
        description=f"daily feature job, kept activity / from the events, {history} days of "
        "history",
        numerator=figures[f"ours{history}"],
        denominator=figures[f"before{history}"],
        target="-",
        notes="same new day, the two jobs in turns",
    )


def incremental(spark, root: Path, repeats: int, events_per_day: int) -> tuple[list, list]:
    """Benchmark 2: the daily job after 5 and after 60 days of history (see :func:`_daily_runs`)."""
    figures, first_run = _daily_runs(spark, root, repeats, events_per_day, (5, 60), True)
    ours_ratio = Comparison(
        benchmark="2. incremental cost",
        description="daily feature job, 60 / 5 days of history",
        numerator=figures["ours60"],
        denominator=figures["ours5"],
        target="<= 1.3x",
        notes="each sample: the feature job of a newly arrived day (kept activity refreshed "
        "from silver's change feed, then the features)",
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
    comparisons = [ours_ratio, naive_ratio, _before_after(figures, 5), _before_after(figures, 60)]
    return comparisons, [*figures.values(), *first_run]


def scaling(spark, root: Path, repeats: int, events_per_day: int) -> tuple[list, list]:
    """One day of the pipeline (ingest, silver MERGE, daily features) after a week of history,
    at 1x, 4x and 16x events per day; each repeat is the next new day."""
    from clickstream.pipeline.features import build_features

    figures = {}
    for factor in (1, 4, 16):
        volume = events_per_day * factor
        schema = f"scale{factor}"
        days = synthetic_days(7 + repeats)
        print(f"  {factor}x: landing {len(days)} days of {volume} events", flush=True)
        landing = root / f"landing{factor}"
        generate_days(landing, days, volume)
        load_days(spark, landing, days[:7], schema, bulk=True)
        build_features(
            spark,
            start=days[6],
            end=days[6],
            catalog=CATALOG,
            silver_schema=schema,
            progress=_quiet,
        )

        def pipeline(ds: str, landing=landing, schema=schema) -> None:
            load_days(spark, landing, [ds], schema)
            build_features(
                spark, start=ds, end=ds, catalog=CATALOG, silver_schema=schema, progress=_quiet
            )

        figure = Figure(f"one day of the pipeline at {factor}x ({volume} events/day)", "s")
        for ds in days[7:]:
            figure.samples.append(_timed(lambda ds=ds: pipeline(ds)))
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


def run(repeats: int = 3, events_per_day: int = EVENTS_PER_DAY) -> tuple[list, list]:
    repeats = max(1, min(repeats, 3))  # each repeat is minutes of Spark work at 16x
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        root = Path(tmp)
        spark = local_session(root / "state")
        try:
            c2, f2 = incremental(spark, root / "inc", repeats, events_per_day)
            c3, f3 = scaling(spark, root / "scale", repeats, events_per_day)
        finally:
            spark.stop()
    return c2 + c3, f2 + f3
