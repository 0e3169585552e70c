"""Helpers shared by the reliability tests: whole-table snapshots and comparisons."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from pyspark.testing import assertDataFrameEqual

ROOT = Path(__file__).resolve().parents[2]
DAYS = ["2019-10-01", "2019-10-02", "2019-10-03", "2019-10-04"]
LANDING = "/Volumes/ecom/raw/landing/events"  # what the DAGs pass; jobs map it to a local root


def table_names(spark, schema: str) -> list[str]:
    """Every table of ``schema`` in the session catalog, sorted.

    ``SHOW TABLES``, not ``spark.catalog.listTables``: the latter decodes its rows into
    ``catalog.Table`` objects, which Spark's expression interpreter (the tests' setting,
    ``tests/conftest.py``) cannot do (``EXPRESSION_DECODING_FAILED``)."""
    rows = spark.sql(f"SHOW TABLES IN `{schema}`").where("NOT isTemporary").collect()
    return sorted(r.tableName for r in rows)


def snapshot(spark, schema: str, where: str | None = None) -> dict[str, list]:
    """Every row of every table of ``schema`` (or those matching ``where``): what a rerun or a
    fault must leave unchanged."""
    tables = {t: spark.table(f"{schema}.{t}") for t in table_names(spark, schema)}
    return {t: (df.where(where) if where else df).collect() for t, df in tables.items()}


def assert_tables_equal(spark, schema: str, expected: dict[str, list] | str) -> None:
    """Every table of ``schema`` holds exactly the rows of ``expected`` (a snapshot or a
    schema), all columns compared, in any row order; no table missing, none extra."""
    if isinstance(expected, str):
        expected = snapshot(spark, expected)
    assert table_names(spark, schema) == sorted(expected), schema
    for table, rows in expected.items():
        assertDataFrameEqual(spark.table(f"{schema}.{table}"), rows)


def delta_version(spark, table: str) -> int:
    return int(spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()["version"])


def data_files(table_dir: Path) -> set[str]:
    """Names of the Parquet data files on disk in a Delta table's folder (committed or not)."""
    return {p.name for p in table_dir.rglob("*.parquet") if "_delta_log" not in p.parts}


def committed_files(spark, table_dir: Path) -> set[str]:
    """Names of the data files of the table's current version."""
    files = spark.read.format("delta").load(str(table_dir)).inputFiles()
    return {f.rsplit("/", 1)[-1] for f in files}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1, process=None):
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what`` on timeout
    (or at once when ``process`` exited)."""
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


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group of ``process`` (started with ``start_new_session``)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def project_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports the project as the tests do."""
    paths = [str(ROOT), str(ROOT / "spark_jobs"), str(ROOT / "include"), str(ROOT / "plugins")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


@contextlib.contextmanager
def volumes_root(root: Path):
    """Jobs run in this process map ``/Volumes/...`` to ``root``, as the workspace maps its own."""
    previous = os.environ.get("LOCAL_VOLUMES_ROOT")
    os.environ["LOCAL_VOLUMES_ROOT"] = str(root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("LOCAL_VOLUMES_ROOT", None)
        else:
            os.environ["LOCAL_VOLUMES_ROOT"] = previous


def ingest(volumes: Path, schema: str, ds: str) -> None:
    """``ingest_events.py`` for ``ds`` from the Volume's landing folder, in this process."""
    from ingest_events import main as ingest_main

    with volumes_root(volumes):
        ingest_main(
            [
                "--ds",
                ds,
                "--catalog",
                "spark_catalog",
                "--landing-dir",
                LANDING,
                "--bronze-schema",
                schema,
            ]
        )


def delta_tables(spark, warehouse: Path, schema: str) -> dict:
    """Every Delta table of ``schema`` in another process's warehouse, read by path."""
    folder = warehouse / f"{schema}.db"
    return {
        d.name: spark.read.format("delta").load(str(d))
        for d in sorted(folder.iterdir())
        if (d / "_delta_log").is_dir()
    }
