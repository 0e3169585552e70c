"""Write synthetic REES46-format click-stream, one CSV per day, into the landing Volume.

    generate_events.py --start-date 2019-10-01 --days 14 \
        --landing-dir /Volumes/ecom/raw/landing/events [--seed 42] [--users 3000] \
        [--events-per-day 20000] [--drift-scenario price_shift --drift-start 2019-10-10] [--gzip]

Layout (the one ``ingest_events.py`` and ``split_monthly_file.py`` share)::

    <landing>/<YYYY-MM-DD>/events.csv[.gz]      the day's events (a few late ones of D-1, D-2)
    <landing>/../ground_truth/users.csv         user_id,purchase_propensity,activity_share
    <landing>/../ground_truth/days.csv          day,sessions,cart_scale,buy_scale (one row a
                                                day generated, merged across calls)
    <landing>/../ground_truth/generator.json    the parameters of the last generation

The same seed, users, volume and drift settings give byte-identical files for a day whatever
other days are generated, so a day can be regenerated alone. Files are written under a hidden
temporary name and renamed, so an ingest never reads a half-written file. Plain Python and
numpy: no Spark session is needed (the script also runs as a ``spark_python_task``).

The ground truth is never ingested: it is what the training job's oracle needs to compute each
user's true probability of a purchase within the label horizon (see ``docs/models.md``).
"""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from clickstream.core.jobs import parse_arguments
from clickstream.core.schema import parse_ds
from clickstream.core.volumes import local_path
from clickstream.sources.ground_truth import day_truth_of_lines, days_csv, parse_days_csv
from clickstream.sources.synthetic import (
    DRIFT_SCENARIOS,
    Drift,
    build_world,
    generate_day,
    ground_truth_csv,
    to_csv,
)


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    partial.replace(path)


def _earlier_days(truth: Path, args) -> dict:
    """The days.csv rows of earlier calls of the same world and volume (else none): a day
    generated again replaces its row, the other days stay."""
    days_path, generator = truth / "days.csv", truth / "generator.json"
    if not (days_path.exists() and generator.exists()):
        return {}
    earlier = json.loads(generator.read_text())
    same = all(
        earlier.get(key) == getattr(args, key) for key in ("seed", "users", "events_per_day")
    )
    return parse_days_csv(days_path.read_text()) if same else {}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--start-date", required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, required=True, help="number of consecutive days")
    parser.add_argument(
        "--landing-dir", required=True, help="e.g. /Volumes/ecom/raw/landing/events"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--events-per-day", type=int, default=20000, help="a weekday's volume")
    parser.add_argument("--drift-scenario", choices=DRIFT_SCENARIOS, default="none")
    parser.add_argument("--drift-start", help="first drifted day, YYYY-MM-DD")
    parser.add_argument("--gzip", action="store_true", help="write events.csv.gz")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parse_arguments(parser, argv, "generate_events")  # paths checked
    try:
        start = date.fromisoformat(parse_ds(args.start_date))
        drift_start = date.fromisoformat(parse_ds(args.drift_start)) if args.drift_start else None
        drift = Drift(args.drift_scenario, drift_start)
        landing = Path(local_path(args.landing_dir.rstrip("/")))
    except ValueError as error:
        parser.error(str(error))
    if args.days < 1 or args.users < 1 or args.events_per_day < 1:
        parser.error("--days, --users and --events-per-day must be positive")

    world = build_world(args.seed, args.users)
    truth = landing.parent / "ground_truth"
    days = _earlier_days(truth, args)
    _write(truth / "users.csv", ground_truth_csv(world))
    parameters = {
        "seed": args.seed,
        "users": args.users,
        "events_per_day": args.events_per_day,
        "start_date": start.isoformat(),
        "days": args.days,
        "drift_scenario": drift.scenario,
        "drift_start": drift_start.isoformat() if drift_start else None,
    }
    _write(truth / "generator.json", (json.dumps(parameters, indent=2) + "\n").encode())
    logical_landing = args.landing_dir.rstrip("/")
    logical_truth = f"{posixpath.dirname(logical_landing)}/ground_truth/users.csv"
    print(f"ground truth of {args.users} users -> {logical_truth}", flush=True)
    name, other = ("events.csv.gz", "events.csv") if args.gzip else ("events.csv", "events.csv.gz")
    for offset in range(args.days):
        day = start + timedelta(days=offset)
        started = time.monotonic()
        lines = generate_day(world, args.seed, day, args.events_per_day, drift)
        folder = landing / day.isoformat()
        _write(folder / name, to_csv(lines, compress=args.gzip))
        # The ingest reads every CSV of the day: a copy in the other format would double it.
        (folder / other).unlink(missing_ok=True)
        days[day] = day_truth_of_lines(lines, day, drift)
        print(
            f"{day}: {len(lines)} events -> {logical_landing}/{day}/{name} "
            f"({time.monotonic() - started:.2f}s)",
            flush=True,
        )
    _write(truth / "days.csv", days_csv(list(days.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
