"""Checks that a committed generated page is what the current code generates."""

from __future__ import annotations

import difflib

from tests.support.processes import ROOT


def assert_committed(relative: str, expected: str, regenerate: str) -> None:
    """``relative`` (a path from the project root) holds ``expected``, or the test fails with
    the first lines of the difference and how to regenerate the page."""
    path = ROOT / relative
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    diff = "".join(
        list(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                f"{relative} (committed)",
                "generated from the code",
            )
        )[:60]
    )
    assert committed == expected, f"{relative} is out of date: {regenerate}\n{diff}"
