"""Write synthetic REES46-format click-stream, one CSV per day, into the landing Volume.

    generate_events.py --start-date 2019-10-01 --days 14 \
        --landing-dir /Volumes/ecom/raw/landing/events [--seed 42] [--users 3000] \
        [--events-per-day 20000] [--drift-scenario price_shift --drift-start 2019-10-10] [--gzip]

Layout: ``<landing>/<YYYY-MM-DD>/events.csv[.gz]``; the ground-truth propensity of every user
goes to ``<landing>/../ground_truth/users.csv``, apart from the events.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from clickstream.synthetic import (
    DRIFT_SCENARIOS,
    build_world,
    generate_day,
    ground_truth_csv,
    to_csv,
)
from clickstream.volumes import local_path


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    partial.replace(path)  # the ingest job never sees a half-written file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start-date", type=date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--landing-dir", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--events-per-day", type=int, default=20000)
    parser.add_argument("--drift-scenario", choices=DRIFT_SCENARIOS, default="none")
    parser.add_argument("--drift-start", type=date.fromisoformat)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args(argv)
    if args.days < 1 or args.users < 1 or args.events_per_day < 1:
        parser.error("--days, --users and --events-per-day must be positive")
    if args.drift_scenario != "none" and args.drift_start is None:
        parser.error("--drift-scenario needs --drift-start")

    landing = Path(local_path(args.landing_dir.rstrip("/")))
    world = build_world(args.seed, args.users)
    _write(landing.parent / "ground_truth" / "users.csv", ground_truth_csv(world))
    for i in range(args.days):
        day = args.start_date + timedelta(days=i)
        started = time.monotonic()
        rows = generate_day(
            world, args.seed, day, args.events_per_day, args.drift_scenario, args.drift_start
        )
        content = to_csv(rows)
        name = "events.csv.gz" if args.gzip else "events.csv"
        if args.gzip:
            content = gzip.compress(content, mtime=0)
        _write(landing / day.isoformat() / name, content)
        print(
            f"{day}: {len(rows)} events -> {args.landing_dir}/{day}/{name} "
            f"({time.monotonic() - started:.2f}s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
