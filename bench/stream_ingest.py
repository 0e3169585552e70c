"""Benchmark 12: the streaming ingest of a day against the batch ingest of the same files.

Generated days of ``EVENTS_PER_DAY`` events, each delivered as ``PARTS`` files. For each day,
side by side and alternating which goes first:

* **batch**: ``ingest()`` of the date (today's batch path: one read, replace the partition);
* **stream**: the day's files are delivered into the stream's landing folder, then one
  ``availableNow`` trigger (``run_stream``) lands them and ``settle_date`` checks the date, as
  ``ingest_events.py --checkpoint`` does in the daily DAG.

Both run in one local SparkSession (a warm cluster), so the figures are Spark work, not JVM
start-up. Target: stream / batch <= 1.3x. A second figure: a trigger with nothing new (what a
backfill's later dates and a clear of a settled date cost).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.common import Comparison, Figure, local_session
from local.simulations.landing import CATALOG, generate_days, synthetic_days

EVENTS_PER_DAY = 100_000
PARTS = 3


def _quiet(_message: str) -> None:
    pass


def _split(folder: Path, parts: int) -> None:
    """Split each day's ``events.csv`` into ``parts`` files (each with the header)."""
    for day in folder.iterdir():
        header, *lines = (day / "events.csv").read_text().splitlines(keepends=True)
        (day / "events.csv").unlink()
        size = -(-len(lines) // parts)
        for n in range(parts):
            chunk = lines[n * size : (n + 1) * size]
            (day / f"part-{n + 1}.csv").write_text(header + "".join(chunk))


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(repeats: int = 3, events_per_day: int = EVENTS_PER_DAY) -> tuple[list, list]:
    from clickstream.pipeline.ingest import ingest, settle_date
    from clickstream.pipeline.stream import run_stream

    repeats = max(2, min(repeats, 5))
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        root = Path(tmp)
        source, streamed = root / "landing", root / "stream-landing"
        days = synthetic_days(repeats + 1)  # the first day warms both paths up
        print(f"  landing {len(days)} days of {events_per_day} events in {PARTS} parts", flush=True)
        generate_days(source, days, events_per_day)
        _split(source, PARTS)
        spark = local_session(root / "state")
        batch = Figure(f"batch ingest of a day ({events_per_day} events, {PARTS} files)", "s")
        stream = Figure(f"stream trigger + settle of the same day ({PARTS} new files)", "s")
        idle = Figure("stream trigger + settle with nothing new", "s")

        def batch_day(ds: str) -> None:
            ingest(
                spark,
                ds=ds,
                catalog=CATALOG,
                landing_dir=str(source),
                schema="bench_batch",
                log=_quiet,
            )

        def stream_day(ds: str) -> None:
            run_stream(
                spark,
                catalog=CATALOG,
                landing_dir=str(streamed),
                checkpoint=str(root / "checkpoint"),
                schema="bench_stream",
                log=_quiet,
            )
            settle_date(
                spark,
                ds=ds,
                catalog=CATALOG,
                landing_dir=str(streamed),
                schema="bench_stream",
                log=_quiet,
            )

        try:
            for n, ds in enumerate(days):
                shutil.copytree(source / ds, streamed / ds)
                order = [("batch", batch_day), ("stream", stream_day)]
                if n % 2:
                    order.reverse()
                took = {
                    name: _timed(lambda action=action, ds=ds: action(ds)) for name, action in order
                }
                quiet = _timed(lambda ds=ds: stream_day(ds))
                if n == 0:
                    continue  # warm-up
                batch.samples.append(took["batch"])
                stream.samples.append(took["stream"])
                idle.samples.append(quiet)
                print(
                    f"  {ds}: batch {took['batch']:.1f} s, stream {took['stream']:.1f} s, "
                    f"nothing new {quiet:.1f} s",
                    flush=True,
                )
            rows = {
                schema: spark.table(f"{schema}.events").count()
                for schema in ("bench_batch", "bench_stream")
            }
        finally:
            spark.stop()
    if rows["bench_batch"] != rows["bench_stream"]:
        raise AssertionError(f"the two paths landed different rows: {rows}")
    paired = sorted(s / b for s, b in zip(stream.samples, batch.samples, strict=True))
    comparison = Comparison(
        benchmark="12. streaming ingest",
        description="a day's files: stream trigger + settle / batch ingest",
        numerator=stream,
        denominator=batch,
        target="<= 1.3x",
        notes=(
            f"both landed {rows['bench_batch']} rows; per-day ratios "
            f"{', '.join(f'{r:.2f}' for r in paired)}; nothing new: {idle.cell()}"
        ),
    )
    comparison.meets_target = comparison.ratio <= 1.3
    return [comparison], [batch, stream, idle]
