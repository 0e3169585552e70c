"""Benchmark 2 at 16x: the daily feature job with the kept activity against the job computing
from the events (the before), on the same newly arrived days, at 320,000 events a day with a
full 30-day horizon (31 days of history). At 1x (benchmark 2) the refresh of the kept activity
costs more than it saves; this measures the volume where the 30 days of events it no longer
reduces dominate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.feature_pipeline import _session, at_volume

FACTOR = 16


def run(repeats: int = 3, events_per_day: int = 20000) -> tuple[list, list]:
    repeats = max(1, min(repeats, 3))  # each sample loads a day of 320k events first
    with tempfile.TemporaryDirectory(prefix="bench-incremental-volume-") as tmp:
        root = Path(tmp)
        spark = _session(root / "state")
        try:
            return at_volume(spark, root, repeats, events_per_day * FACTOR)
        finally:
            spark.stop()
