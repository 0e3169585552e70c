"""docs/quality_checks.md is the table the current checks generate, and it shows every check.

``local/docs/quality_checks.py`` renders the :class:`Check` objects of every suite of
``spark_jobs/clickstream/quality/checks.py``; ``make docs`` rewrites the page. No Spark, no
Great Expectations.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from clickstream.quality.checks import BLOCKING, SUITES, WARNING
from local.docs import quality_checks
from tests.support.generated import assert_committed

ROOT = Path(__file__).resolve().parents[3]
REGENERATE = "run `make docs` and commit docs/quality_checks.md"


def _sections(text: str) -> dict[str, list[list[str]]]:
    """suite -> the cells of each body row of its table."""
    sections: dict[str, list[list[str]]] = {}
    suite = None
    for line in text.splitlines():
        heading = re.fullmatch(r"## `(\w+)`", line)
        if heading:
            suite = heading.group(1)
            sections[suite] = []
        elif suite and line.startswith("| ") and not line.startswith("| expectation |"):
            sections[suite].append([cell.strip() for cell in line.strip("|").split(" | ")])
    return sections


def test_committed_page_is_generated_from_the_current_checks():
    assert_committed("docs/quality_checks.md", quality_checks.generate(), REGENERATE)


def test_every_suite_has_a_table_in_the_order_of_suites():
    assert list(_sections(quality_checks.generate())) == list(SUITES)


@pytest.mark.parametrize("suite", SUITES)
def test_every_check_of_the_suite_is_a_row_of_its_table(suite):
    """Each check shows up with its expectation, column, severity, threshold and why."""
    checks = quality_checks.suite_check_lists()[suite]
    rows = _sections(quality_checks.generate())[suite]
    for check in checks:
        assert check.description, f"{suite}: {check.expectation} {check.column} has no why"
        matching = [
            row
            for row in rows
            if row[0] == f"`{check.expectation}`"
            and row[2] == check.severity
            and row[3] == check.expected.replace("|", "\\|")
            and row[4] == check.description
            and (f"`{check.column}`" in row[1] if check.column else row[1] == "")
        ]
        assert matching, f"{suite}: no row for {check.expectation} on {check.column}"
    assert {row[2] for row in rows} <= {BLOCKING, WARNING}


def test_a_missing_check_fails_the_row_test():
    """The row test above would catch a check the page leaves out."""
    checks = quality_checks.suite_check_lists()["silver_events"]
    page = quality_checks.render({"silver_events": checks[:-1]})
    rows = _sections(page)["silver_events"]
    dropped = checks[-1]
    assert not any(
        row[0] == f"`{dropped.expectation}`" and row[4] == dropped.description for row in rows
    )


def test_no_bronze_check_is_skipped_in_the_example():
    """The page shows every bronze check as it runs with enough history, none skipped."""
    assert not [c for c in quality_checks.suite_check_lists()["bronze_events"] if c.skipped]


def test_check_mode_passes_on_the_committed_page_and_fails_on_a_stale_one(tmp_path):
    stale = tmp_path / "quality_checks.md"
    stale.write_text("# stale\n", encoding="utf-8")
    assert quality_checks.main(["--check"]) == 0
    assert quality_checks.main(["--check", "--output", str(stale)]) == 1


def test_the_generator_imports_neither_spark_nor_great_expectations():
    code = (
        "import sys; import local.docs.quality_checks as q; q.generate(); "
        "print(sorted(m for m in ('pyspark', 'great_expectations') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
