"""The one polling helper of the tests."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1, process=None):
    """Poll ``predicate`` until it returns a truthy value, and return that value; fail naming
    ``what`` on timeout (or at once when ``process`` exited)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)
