"""Pytest plugin: how the test files are shared out to pytest-xdist workers.

``PYTEST_WORKERS=N make test`` runs ``--dist loadfile``: each test file runs whole on one worker,
so its module fixtures are built once, and the e2e folder on one worker, so the full local stack
starts once per run. The longest files go out first. Registered by ``pytest_plugins`` in
tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os

from tests.support.timing import FILE_TIMES

# Seconds a test of each kind (marker or fixture) takes, to order the files when no whole run
# has been recorded yet.
ESTIMATED_SECONDS = {
    "e2e": 120.0,
    "stack": 120.0,
    "spark": 20.0,
    "workspace": 20.0,
    "airflow": 10.0,
    "airflow_db": 10.0,
}


def unit_of_work(nodeid: str) -> str:
    """The unit of work of a pytest-xdist worker: a test file, or the whole e2e folder."""
    path = nodeid.split("::", 1)[0]
    return "tests/e2e" if path.startswith("tests/e2e/") else path


def pytest_xdist_make_scheduler(config, log):
    """Units go out in collection order (see below)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """The longest files first (the last whole run's times, where recorded, otherwise an
    estimate from the markers and fixtures), so the xdist workers finish together instead of
    one waiting on a long file started last. Within a file the tests keep their order. A run
    in one process keeps pytest's order."""
    if os.environ.get("PYTEST_XDIST_WORKER", "main") == "main":
        return
    recorded: dict[str, float] = {}
    if FILE_TIMES.exists():
        with contextlib.suppress(ValueError, OSError):
            recorded = json.loads(FILE_TIMES.read_text())
    cost: dict[str, float] = {}
    first: dict[str, int] = {}
    counted: set[str] = set()
    for index, item in enumerate(items):
        group = unit_of_work(item.nodeid)
        first.setdefault(group, index)
        path = item.nodeid.split("::", 1)[0]
        if path in recorded:
            seconds = 0.0 if path in counted else recorded[path]
            counted.add(path)
        else:
            kinds = {m.name for m in item.iter_markers()} | set(getattr(item, "fixturenames", ()))
            seconds = next((v for k, v in ESTIMATED_SECONDS.items() if k in kinds), 0.5)
        cost[group] = cost.get(group, 0.0) + seconds
    items.sort(
        key=lambda item: (-cost[unit_of_work(item.nodeid)], first[unit_of_work(item.nodeid)])
    )
