"""The test-timing plugin's notion of a whole-suite session: only such a session counts for
benchmark 7 and orders the files of an xdist run."""

from __future__ import annotations

import pytest

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
