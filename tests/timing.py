"""Pytest plugin: the wall time of each test session, by folder, for the CI-budget benchmark.

Loaded through ``-p tests.timing`` (pyproject). At the end of every session it writes
``.local/test-timings/last.json``: wall time, outcomes, the time spent in each test folder
(setup + call + teardown), the slowest tests and the command's arguments, so
``bench/test_suite.py`` can report the last full ``make test`` without running the suite again.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / ".local" / "test-timings" / "last.json"

_started = time.monotonic()
_folders: dict[str, float] = defaultdict(float)
_tests: dict[str, float] = defaultdict(float)
SLOWEST = 30
_outcomes: Counter = Counter()


def pytest_sessionstart(session):
    global _started
    _started = time.monotonic()


def pytest_runtest_logreport(report):
    parts = report.nodeid.split("/")
    folder = "/".join(parts[:2]) if len(parts) > 2 else parts[0].split("::")[0]
    _folders[folder] += report.duration
    _tests[report.nodeid] += report.duration
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[report.outcome] += 1


def pytest_sessionfinish(session, exitstatus):
    if getattr(session.config.option, "collectonly", False):
        return
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(
        json.dumps(
            {
                "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "wall_seconds": round(time.monotonic() - _started, 1),
                "exit_status": int(exitstatus),
                "args": list(session.config.invocation_params.args),
                "outcomes": dict(_outcomes),
                "folders": {k: round(v, 1) for k, v in sorted(_folders.items())},
                # setup + call + teardown; a session fixture counts for its first/last test
                "slowest": {
                    k: round(v, 1)
                    for k, v in sorted(_tests.items(), key=lambda kv: -kv[1])[:SLOWEST]
                },
            },
            indent=2,
        )
        + "\n"
    )
