"""The test-timing plugin's notion of a whole-suite session: only such a session counts for
benchmark 7 (the record in last.json says whether it was one) and orders the files of an xdist
run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.support import timing
from tests.support.timing import is_selection


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-q"],
        ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"],
        ["-p", "no:cacheprovider", "--timeout", "60", "-x"],
    ],
)
def test_options_alone_are_the_whole_suite(args):
    assert is_selection(args) is False


@pytest.mark.parametrize(
    "args",
    [
        ["tests/dags"],
        ["-n", "2", "tests/spark_jobs/pipeline/test_features.py::test_one"],
        ["-k", "refresh"],
        ["-m", "not e2e"],
        ["-m=spark"],
        ["--dist", "loadfile", "tests/e2e"],
    ],
)
def test_paths_node_ids_and_filters_are_a_selection(args):
    assert is_selection(args) is True


def _session(args: list[str]) -> SimpleNamespace:
    """What the plugin's session-end hook reads of a pytest session, for a one-process run."""
    option = SimpleNamespace(collectonly=False, numprocesses=None)
    config = SimpleNamespace(option=option, invocation_params=SimpleNamespace(args=tuple(args)))
    return SimpleNamespace(config=config)


@pytest.mark.parametrize(
    ("args", "selection"), [(["-q"], False), (["-q", "tests/dags"], True), (["-k", "x"], True)]
)
def test_the_record_says_whether_the_session_was_a_selection(
    args, selection, tmp_path, monkeypatch
):
    record, file_times = tmp_path / "last.json", tmp_path / "files.json"
    monkeypatch.setattr(timing, "OUTPUT", record)
    monkeypatch.setattr(timing, "FILE_TIMES", file_times)
    timing.pytest_sessionfinish(_session(args), exitstatus=0)
    written = json.loads(record.read_text())
    assert written["args"] == args
    assert written["selection"] is selection
    # Only a whole-suite session gives the file times that order an xdist run.
    assert file_times.exists() is not selection
