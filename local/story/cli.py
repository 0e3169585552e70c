"""The command line of ``make run`` (``python -m local.story``): its options, then the story
and its summary."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

import local.story
from local.stack.config import StackConfig
from local.story.story import Events, StageClock, Story, log, tell
from local.story.summary import report


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Story]:
    parser = argparse.ArgumentParser(
        prog="make run",
        description=local.story.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--month", help="drift month YYYY-MM (default: the last full month)")
    parser.add_argument("--warmup-days", type=int, default=14, help="history before the month")
    parser.add_argument("--drift-scenario", default="behaviour_change")
    parser.add_argument("--drift-day", type=int, default=8, help="first drifted day of the month")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--events-per-day", type=int, default=20000)
    parser.add_argument(
        "--airflow-days",
        type=int,
        default=2,
        help="the month's last days run by the daily DAGs (the rest is loaded in one job)",
    )
    parser.add_argument("--timeout-minutes", type=int, default=90)
    args = parser.parse_args(argv)
    if args.warmup_days < 0:
        parser.error("--warmup-days must be at least 0")
    try:
        story = Story.build(
            args.month, args.warmup_days, args.drift_day, date.today(), args.airflow_days
        )
    except ValueError as error:
        parser.error(str(error))
    return args, story


def main(argv: list[str] | None = None) -> int:
    args, story = parse_args(argv)
    started = time.monotonic()
    days = story.days
    config = StackConfig.from_env()
    log(
        f"history {days[0]}..{days[-1]} ({len(days)} days, {args.events_per_day} events/day; "
        f"the DAGs run {story.airflow_days[0]}..{days[-1]}); "
        f"drift '{args.drift_scenario}' from {story.drift_start}; first champion as of "
        f"{story.seed_as_of}; drift check of {story.month_start:%Y-%m}"
    )
    clock = StageClock(started)
    events = Events(args.seed, args.events_per_day, args.drift_scenario)
    try:
        outcome = tell(story, config, events, args.timeout_minutes, clock)
    except RuntimeError as error:
        print(f"[run] error: {error}", file=sys.stderr)
        return 1
    return report(outcome, story, config, clock, started)


if __name__ == "__main__":
    sys.exit(main())
