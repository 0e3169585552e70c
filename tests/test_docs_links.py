"""The README and docs/*.md: every relative link resolves, and the README stays short.

A moved or renamed file breaks the links that point to it without any other test noticing; a
link to a heading (``page.md#section``) breaks when the heading is reworded. The same goes for
the paths and modules the pages (and the DAG runbooks, the module docstrings of ``dags/``) name
in code: `spark_jobs/x.py`, `python -m local.x`. Those must exist in the tree too.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
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


# ------------------------------------------------------------------ paths and modules named in code

# The top-level folders a path in code starts with; `clickstream/` is short for
# `spark_jobs/clickstream/` (docs/extending.md says so).
PATH_ROOTS = (
    "dags/",
    "include/",
    "plugins/",
    "spark_jobs/",
    "local/",
    "deploy/",
    "setup/",
    "bench/",
    "tests/",
    "docs/",
    "docker/",
    "clickstream/",
)
ALIASES = {"clickstream/": "spark_jobs/clickstream/"}
# Where `python -m` finds the repository's modules: the pytest `pythonpath` of pyproject.toml.
MODULE_ROOTS = (ROOT, ROOT / "spark_jobs", ROOT / "include", ROOT / "plugins")

CODE = re.compile(r"```.*?```|``[^`]+``|`[^`\n]+`", re.S)
TOKEN_SPLIT = re.compile(r"[\s=,()\"'|]+")
GLOB = re.compile(r"[*?\[{<]")
PYTHON_M = re.compile(r"\bpython[\w.]*\s+-m\s+([A-Za-z_][\w.]*)")


def named_paths(text: str) -> list[str]:
    """The repository paths written in code (spans and fenced blocks) of ``text``.

    A token counts when it starts with one of ``PATH_ROOTS`` (so `.local/jars` does not); a
    pytest node id (``::name``), a ``:line`` or ``:name`` suffix and anything from the first
    glob or ``<placeholder>`` on are cut off, leaving what must exist.
    """
    found = []
    for code in CODE.findall(text):
        for token in TOKEN_SPLIT.split(code.strip("`")):
            if not token.startswith(PATH_ROOTS):
                continue
            path = token.split("::")[0]
            path = re.sub(r":[^/]*$", "", path)
            glob = GLOB.search(path)
            if glob:
                path = path[: glob.start()].rpartition("/")[0] + "/"
            found.append(path.rstrip(".;:`"))
    return found


def named_modules(text: str) -> list[str]:
    """The modules of every ``python -m <module>`` in ``text``."""
    return [m.rstrip(".") for m in PYTHON_M.findall(text)]


def path_exists(path: str) -> bool:
    for short, full in ALIASES.items():
        if path.startswith(short):
            path = full + path[len(short) :]
    return (ROOT / path).exists()


def module_exists(module: str) -> bool:
    """A module of the repository runnable with ``python -m``: ``a/b.py``, or a package
    ``a/b/`` with an ``__init__.py`` or ``__main__.py``; a module outside the repository
    (``pytest``) must be installed."""
    parts = module.split(".")
    in_repo = False
    for root in MODULE_ROOTS:
        if not (root / parts[0]).is_dir() and not (root / f"{parts[0]}.py").is_file():
            continue
        in_repo = True
        base = root.joinpath(*parts)
        if (
            base.with_name(f"{base.name}.py").is_file()
            or (base / "__init__.py").is_file()
            or (base / "__main__.py").is_file()
        ):
            return True
    return not in_repo and importlib.util.find_spec(parts[0]) is not None


def _dag_runbook(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def test_the_code_parsers_find_repository_paths_and_modules():
    text = (
        "`spark_jobs/x.py --ds D` `.local/jars` `tests/a.py::test_b[<id>]` `dags/d.py:12`\n"
        "`clickstream/models/<model>/` `docs/*.md` `--ignore=tests/e2e` `see spark_jobs/` src/x\n"
        "```bash\n.venv/bin/python -m local.stack up\nls local/workspace/\n```\n"
        "`python -m deploy.payloads render`, `python3 -m pytest`."
    )
    assert named_paths(text) == [
        "spark_jobs/x.py",
        "tests/a.py",
        "dags/d.py",
        "clickstream/models/",
        "docs/",
        "tests/e2e",
        "spark_jobs/",
        "local/workspace/",
    ]
    assert named_modules(text) == ["local.stack", "deploy.payloads", "pytest"]
    assert path_exists("clickstream/models/propensity/candidates.py")
    assert not path_exists("clickstream/models/propensity/model.py")
    assert module_exists("local.stack")  # a package with __main__.py
    assert module_exists("clickstream.monitoring.drift")  # spark_jobs/ is on sys.path
    assert module_exists("pytest")
    assert not module_exists("local.no_such_module")
    assert not module_exists("no_such_top_level_module_xyz")


SOURCES = [
    *((p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8")) for p in PAGES),
    *((f"{p.relative_to(ROOT).as_posix()}:doc_md", _dag_runbook(p)) for p in DAG_FILES),
]


@pytest.mark.parametrize(("name", "text"), SOURCES, ids=[name for name, _ in SOURCES])
def test_every_path_and_module_named_in_code_exists(name, text):
    """A page or runbook that names a moved or removed file or module misleads its reader.

    The files the tree was reorganised into are named by path (`clickstream/x/y.py`), so a
    later move fails here instead of going stale silently.
    """
    missing = [
        f"{path}: no such file or folder" for path in named_paths(text) if not path_exists(path)
    ]
    missing += [
        f"python -m {module}: no such module"
        for module in named_modules(text)
        if not module_exists(module)
    ]
    assert missing == [], f"{name} names what is not in the repository"


def test_the_dag_runbooks_are_checked():
    assert len(DAG_FILES) >= 6 and all(_dag_runbook(p) for p in DAG_FILES)
