"""docs/reliability.md agrees with the tests: its case counts are its rows, and every test a row
names exists (a renamed or deleted test leaves a row that promises what nothing checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
TESTS = ROOT / "tests"

SECTION = re.compile(r"^## (.+)$", re.M)
# In the last column: `tests/x/test_y.py::name`, `test_y.py::name`, `::name` (same file as the
# reference before it), `test_name`, or a whole file `tests/x/test_y.py`.
REFERENCE = re.compile(r"`((?:[\w/]+\.py)?(?:::)?\w*(?:\[[^\]`]*\])?)`")


def _sections() -> dict[str, list[list[str]]]:
    """section title -> its table rows (cells), header and rule lines left out."""
    text = DOC.read_text()
    found: dict[str, list[list[str]]] = {}
    parts = SECTION.split(text)
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        rows = [
            [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in body.splitlines()
            if line.startswith("| ") and not line.startswith("| case ") and "---" not in line
        ]
        found[title.strip()] = rows
    return found


def _summary() -> dict[str, int]:
    """The counts of the summary table at the top: section -> cases."""
    head = SECTION.split(DOC.read_text())[0]
    counts = {}
    for line in head.splitlines():
        match = re.match(r"\| (?:\[(.+?)\]\(#[\w-]+\)|(total)) \| (\d+) \|", line)
        if match:
            counts[match.group(1) or match.group(2)] = int(match.group(3))
    return counts


def test_the_case_counts_are_the_rows_of_the_tables():
    sections = {title: len(rows) for title, rows in _sections().items() if rows}
    summary = _summary()
    total = summary.pop("total")
    assert summary == sections
    assert total == sum(sections.values())
    assert f"**Cases: {total}**" in DOC.read_text()


def _test_files() -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for path in TESTS.rglob("test_*.py"):
        files.setdefault(path.name, []).append(path)
    return files


def _defines(path: Path, name: str) -> bool:
    return re.search(rf"^(async )?def {re.escape(name)}\(", path.read_text(), re.M) is not None


def _references() -> list[tuple[str, str]]:
    """(section, reference) of every test the rows name, a ``::name`` resolved to its file."""
    found = []
    for title, rows in _sections().items():
        if title == "Bad input":  # parameter ids of one test, checked below
            continue
        for row in rows:
            current = None
            for ref in REFERENCE.findall(row[-1]):
                ref = re.sub(r"\[.*\]$", "", ref)
                file, _, name = ref.partition("::")
                if file.endswith(".py"):
                    current = file
                elif ref.startswith("::"):
                    file = current or ""
                elif ref.startswith("test_"):
                    file, name = "", ref
                else:
                    continue
                found.append((title, f"{file}::{name}"))
    return found


@pytest.mark.parametrize(("section", "reference"), _references())
def test_every_test_a_row_names_exists(section, reference):
    files = _test_files()
    file, _, name = reference.partition("::")
    if file:
        candidates = [ROOT / file] if "/" in file else files.get(file, [])
        assert candidates and all(c.is_file() for c in candidates), f"{file} not found"
    else:
        candidates = [p for paths in files.values() for p in paths]
    if name:
        assert any(_defines(c, name) for c in candidates), f"{section}: {reference} not found"


def test_every_bad_input_id_is_a_case_of_the_bad_input_test():
    source = (TESTS / "spark_jobs" / "test_bad_input.py").read_text()
    ids = [REFERENCE.findall(row[-1])[0] for row in _sections()["Bad input"]]
    assert ids
    missing = [i for i in ids if f'"{i}"' not in source and f"'{i}'" not in source]
    assert missing == []
