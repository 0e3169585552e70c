"""Pytest plugin: the wall time of each test session, by folder, for the CI-budget benchmark.

Loaded through ``-p tests.support.timing`` (pyproject). At the end of every session it writes
``.local/test-timings/last.json``: wall time, outcomes, the time spent in each test folder
(setup + call + teardown), the slowest tests, the command's arguments and whether they selected
part of the suite (``selection``), so ``bench/test_suite.py`` can report the last full
``make test`` without running the suite again.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / ".local" / "test-timings" / "last.json"
# Each test file's time in the last session of the whole suite: tests/support/ordering.py
# orders the files for the xdist workers by it.
FILE_TIMES = ROOT / ".local" / "test-timings" / "files.json"

_started = time.monotonic()
_folders: dict[str, float] = defaultdict(float)
_tests: dict[str, float] = defaultdict(float)
_files: dict[str, float] = defaultdict(float)
SLOWEST = 30
_outcomes: Counter = Counter()


def pytest_sessionstart(session):
    global _started
    _started = time.monotonic()


def pytest_runtest_logreport(report):
    nodeid = report.nodeid
    parts = nodeid.split("/")
    folder = "/".join(parts[:2]) if len(parts) > 2 else parts[0].split("::")[0]
    _folders[folder] += report.duration
    _tests[nodeid] += report.duration
    _files[nodeid.split("::")[0]] += report.duration
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[report.outcome] += 1


def pytest_sessionfinish(session, exitstatus):
    # Under pytest-xdist the controller receives every worker's reports and writes the record.
    if getattr(session.config.option, "collectonly", False) or hasattr(
        session.config, "workerinput"
    ):
        return
    args = list(session.config.invocation_params.args)
    selection = is_selection(args)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(
        json.dumps(
            {
                "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "wall_seconds": round(time.monotonic() - _started, 1),
                "exit_status": int(exitstatus),
                "args": args,
                "selection": selection,
                "workers": getattr(session.config.option, "numprocesses", None) or 0,
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
    if exitstatus in (0, 1) and not selection:
        files = {k: round(v, 1) for k, v in sorted(_files.items(), key=lambda kv: -kv[1])}
        FILE_TIMES.write_text(json.dumps(files, indent=2) + "\n")


# Options of pytest that take a value: their value is not a selection of tests.
_VALUED = {"-n", "--numprocesses", "--dist", "--maxprocesses", "-p", "--timeout", "--durations"}


def is_selection(args: list[str]) -> bool:
    """Whether pytest's arguments select part of the suite (paths, node ids, -k, -m)."""
    rest = iter(args)
    for arg in rest:
        if arg in ("-k", "-m") or arg.startswith(("-k=", "-m=")):
            return True
        if arg in _VALUED:
            next(rest, None)
        elif not arg.startswith("-"):
            return True
    return False
