"""Every test file has a base name of its own: pytest imports test modules by base name (the
test folders are not packages), so a second file of the same name is not run at all; the whole
suite reports it only as an import-mismatch error."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_two_test_files_share_a_base_name():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []
