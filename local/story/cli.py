"""The command line of ``make run`` (``python -m local.story``): its options, then the story
and its summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import local.story
from local.stack.config import StackConfig
from local.story.story import Events, StageClock, Story, log, recall, tell
from local.story.summary import report


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Story]:
    parser = argparse.ArgumentParser(
        prog="make run",
        description=local.story.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--month", help="drift month YYYY-MM (default: the last full month)")
    parser.add_argument(
        "--warmup-days",
        type=int,
        help="history before the month (default: the fewest that give the first champion "
        "mature windows before the drift)",
    )
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
    if args.warmup_days is not None and args.warmup_days < 0:
        parser.error("--warmup-days must be at least 0")
    try:
        story = Story.build(
            args.month, args.warmup_days, args.drift_day, date.today(), args.airflow_days
        )
    except ValueError as error:
        parser.error(str(error))
    return args, story


def plan(story: Story, events: Events) -> dict[str, object]:
    """What a story is: the dates and the data. Two runs with the same plan tell the same story."""
    return {
        "days": [story.days[0], story.days[-1]],
        "drift_start": story.drift_start.isoformat(),
        "seed_as_of": story.seed_as_of.isoformat(),
        "airflow_days": story.airflow_days,
        "drift_scenario": events.drift_scenario,
        "seed": events.seed,
        "events_per_day": events.per_day,
    }


def earlier_run(path: Path, wanted: dict[str, object]) -> str:
    """``fresh``, ``resume`` (an unfinished or failed run of the same story) or ``reuse`` (a
    finished one); ``SystemExit`` when the state holds another story, whose data would mix with
    this one's (the landing files, the tables and the models are the state's)."""
    if not path.exists():
        return "fresh"
    record = json.loads(path.read_text())
    if record.get("plan") != wanted:
        raise SystemExit(
            f"make run: {path.parent} holds another story ({record.get('plan')}); its data and "
            "models would mix with this one's. Start from a clean state with `make clean` "
            "(deletes that folder) or give another one: ECOM_LOCAL_DIR=<folder> make run ..."
        )
    return "reuse" if record.get("status") == "told" else "resume"


def record_run(path: Path, wanted: dict[str, object], status: str) -> str:
    """Write the story's record; the time it was first told (kept across resumes: the start of
    the window of runs its pipeline monitoring collects), which it returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    earlier = json.loads(path.read_text()) if path.exists() else {}
    started = earlier.get("started") if earlier.get("plan") == wanted else None
    body = {"plan": wanted, "status": status, "at": now, "started": started or now}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return body["started"]


def main(argv: list[str] | None = None) -> int:
    args, story = parse_args(argv)
    started = time.monotonic()
    days = story.days
    config = StackConfig.from_env()
    events = Events(args.seed, args.events_per_day, args.drift_scenario)
    record, wanted = config.state / "story.json", plan(story, events)
    mode = earlier_run(record, wanted)
    log(
        f"history {days[0]}..{days[-1]} ({len(days)} days, {args.events_per_day} events/day; "
        f"the DAGs run {story.airflow_days[0]}..{days[-1]}); "
        f"drift '{args.drift_scenario}' from {story.drift_start}; first champion as of "
        f"{story.seed_as_of}; drift check of {story.month_start:%Y-%m}"
    )
    clock = StageClock(started)
    try:
        if mode == "reuse":
            log(
                "REUSING the results of the same story told earlier on this state: nothing is "
                "rerun, and the summary below is that run's. For a fresh run: make clean && "
                "make run"
            )
            outcome = recall(story, config, clock)
        else:
            if mode == "resume":
                log(
                    "resuming the same story, left unfinished or failed on this state: dates "
                    "that completed are kept, failed runs are rerun (backfills reprocess "
                    "failed runs)"
                )
            first_told = record_run(record, wanted, "running")
            outcome = tell(story, config, events, args.timeout_minutes, clock, first_told)
    except RuntimeError as error:
        print(f"[run] error: {error}", file=sys.stderr)
        if mode != "reuse":
            record_run(record, wanted, "failed")
        return 1
    code = report(outcome, story, config, clock, started, events.drift_scenario)
    if mode != "reuse":
        record_run(record, wanted, "told" if code == 0 else "failed")
    return code


if __name__ == "__main__":
    sys.exit(main())
