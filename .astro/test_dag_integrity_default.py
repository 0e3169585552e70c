"""The Astro CLI's DAG integrity test: `astro dev parse` (and `astro dev upgrade-test`) run this
file with pytest inside the project image, after copying dags/ and .astro/ into it. The CLI finds
it by this path, so keep the name.

It is the file `astro dev init` writes, adapted to Airflow 3.3 and to this project: the
template's `DagBag(include_examples=False)` no longer exists in Airflow 3.3, its exceptions were
compared with their line endings (so none ever matched), and parsing needs no metadata database
here, so none is created. As in the template, connection and variable lookups made while a DAG
file is parsed return placeholders: parsing must not depend on live credentials.

Every DAG file must import; a file listed in dag_integrity_exceptions.txt beside this one (one
path per line, like ``dags/model_training.py``) is exempt. The repository's own DAG checks, which
also hold the DAGs to the project's conventions, are in tests/dags/test_dag_integrity.py.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import pytest
from airflow import settings
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import BaseHook, Connection, Variable

EXCEPTIONS_FILE = Path(__file__).with_name("dag_integrity_exceptions.txt")
_NO_DEFAULT = object()


def _placeholder_connection(conn_id: str) -> Connection:
    print(f"Connection {conn_id!r} fetched while parsing: returning an empty one")
    return Connection(conn_id=conn_id, conn_type="generic")


def _placeholder_variable(key: str, default=_NO_DEFAULT, deserialize_json: bool = False, **_):
    print(f"Variable {key!r} fetched while parsing: returning a placeholder")
    if default is not _NO_DEFAULT:
        return default
    return {} if deserialize_json else f"MOCKED_{key.upper()}_VALUE"


BaseHook.get_connection = staticmethod(_placeholder_connection)
Variable.get = staticmethod(_placeholder_variable)


@contextmanager
def _quiet(namespace: str):
    logger = logging.getLogger(namespace)
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _exceptions() -> set[str]:
    if not EXCEPTIONS_FILE.exists():
        return set()
    lines = (line.strip() for line in EXCEPTIONS_FILE.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def _results() -> list[tuple[str, str]]:
    """(path relative to the DAGs folder's parent, e.g. ``dags/x.py``; error or "") per file."""
    dags_folder = Path(settings.DAGS_FOLDER)
    with _quiet("airflow"):
        bag = DagBag(dag_folder=dags_folder)

    def relative(path: str) -> str:
        return Path(path).relative_to(dags_folder.parent).as_posix()

    errors = {relative(path): message.strip() for path, message in bag.import_errors.items()}
    loaded = {relative(dag.fileloc) for dag in bag.dags.values()} - errors.keys()
    return sorted(errors.items()) + [(path, "") for path in sorted(loaded)]


RESULTS = _results()


def test_the_dags_folder_has_dags():
    assert RESULTS, f"no DAG file found in {settings.DAGS_FOLDER}"


@pytest.mark.parametrize(("rel_path", "error"), RESULTS, ids=[path for path, _ in RESULTS])
def test_file_imports(rel_path, error):
    if error and rel_path not in _exceptions():
        pytest.fail(f"{rel_path} failed to import:\n{error}")
