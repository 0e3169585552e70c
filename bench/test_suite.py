"""Benchmark 7: the test suite's wall time, the CI budget.

Reads what the last test session recorded (``tests/support/timing.py`` writes
``.local/test-timings/last.json`` after every ``make test``), so the 20-odd minutes of the
suite are not spent twice; ``--run-tests`` (``make bench ARGS="--only test_suite --run-tests"``)
runs ``make test`` first. Only a session of the whole suite counts: one the record does not mark
``"selection": false`` is refused. Target: under 20 minutes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.common import Figure, Target

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ROOT / ".local" / "test-timings" / "last.json"
BUDGET_MINUTES = 20.0


def run(repeats: int = 1, run_tests: bool = False) -> tuple[list, list[Figure], list[Target]]:
    if run_tests:
        subprocess.run(["make", "test"], cwd=ROOT, check=False)
    if not TIMINGS.exists():
        raise RuntimeError(f"no test session recorded in {TIMINGS}: run `make test` first")
    last = json.loads(TIMINGS.read_text())
    if last.get("selection", True):
        raise RuntimeError(
            f"the last test session ({' '.join(last['args'])}) is not recorded as the whole "
            "suite: run `make test` first"
        )
    wall = Figure("make test wall time", "min", [last["wall_seconds"] / 60])
    workers = last.get("workers", 0)
    folders = [
        # under xdist the workers' times add up: a folder's share, not its wall time
        Figure(f"make test, time in {folder}", "min", [seconds / 60])
        for folder, seconds in last["folders"].items()
    ]
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(last["outcomes"].items()))
    outcomes += f"; {workers} xdist workers" if workers else "; one process"
    target = Target("7. test suite", wall, BUDGET_MINUTES, notes=f"{outcomes}; {last['finished']}")
    return [], [wall, *folders], [target]
