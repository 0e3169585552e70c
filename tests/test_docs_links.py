"""The README and docs/*.md: every relative link resolves, and the README stays short.

A moved or renamed file breaks the links that point to it without any other test noticing; a
link to a heading (``page.md#section``) breaks when the heading is reworded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links and images of ``text`` that are not URLs."""
    return [t for t in LINK.findall(_prose(text)) if not SCHEME.match(t)]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(h) for h in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8")))}


def test_the_link_parser_finds_relative_links_only():
    text = (
        "[a](docs/a.md) [![b](b.svg)](b.svg) [c](https://x.org/c) `[d](d.md)`\n"
        "```\n[e](e.md)\n```\n[f\ng](g.md#top)"
    )
    assert relative_links(text) == ["docs/a.md", "b.svg", "b.svg", "g.md#top"]
    assert anchor("Run conf of `model_training`") == "run-conf-of-model_training"
    assert anchor("Review what will run: `make payloads`") == "review-what-will-run-make-payloads"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file(page):
    broken = []
    for target in relative_links(page.read_text(encoding="utf-8")):
        file_part, _, fragment = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}: no heading #{fragment} in {path.relative_to(ROOT)}")
    assert broken == [], f"{page.relative_to(ROOT)} has broken links"


def test_the_dag_runbooks_name_existing_docs():
    """The runbooks (``doc_md``) name docs by path: the Airflow UI cannot follow a relative link."""
    named = {
        (dag.name, doc)
        for dag in sorted((ROOT / "dags").glob("*.py"))
        for doc in re.findall(r"docs/[\w.-]+\.md", dag.read_text(encoding="utf-8"))
    }
    assert named, "the DAG runbooks point to docs/runbook.md for what is common to all DAGs"
    assert sorted(pair for pair in named if not (ROOT / pair[1]).exists()) == []


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines: move detail to docs/"
