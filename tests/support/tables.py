"""Whole-table snapshots and comparisons: what a rerun or a fault must leave unchanged."""

from __future__ import annotations

from pathlib import Path

from pyspark.testing import assertDataFrameEqual


def table_names(spark, schema: str) -> list[str]:
    """Every table of ``schema`` in the session catalog, sorted.

    ``SHOW TABLES``, not ``spark.catalog.listTables``: the latter decodes its rows into
    ``catalog.Table`` objects, which Spark's expression interpreter (the tests' setting,
    ``tests/conftest.py``) cannot do (``EXPRESSION_DECODING_FAILED``)."""
    rows = spark.sql(f"SHOW TABLES IN `{schema}`").where("NOT isTemporary").collect()
    return sorted(r.tableName for r in rows)


# Columns that record the delivery, not the data: the modification time of the landing file (a
# copy or a re-delivery of the same bytes has another) and the run that landed it. A rerun or a
# fault must leave the rest unchanged; these are compared by the tests that mean them.
DELIVERY_COLUMNS = {"events_ingest_files": ("modified_at", "batch")}


def _table(spark, schema: str, table: str):
    return spark.table(f"{schema}.{table}").drop(*DELIVERY_COLUMNS.get(table, ()))


def snapshot(spark, schema: str, where: str | None = None) -> dict[str, list]:
    """Every row of every table of ``schema`` (or those matching ``where``): what a rerun or a
    fault must leave unchanged (:data:`DELIVERY_COLUMNS` aside)."""
    tables = {t: _table(spark, schema, t) for t in table_names(spark, schema)}
    return {t: (df.where(where) if where else df).collect() for t, df in tables.items()}


def assert_tables_equal(spark, schema: str, expected: dict[str, list] | str) -> None:
    """Every table of ``schema`` holds exactly the rows of ``expected`` (a snapshot or a
    schema), all columns compared, in any row order; no table missing, none extra."""
    if isinstance(expected, str):
        expected = snapshot(spark, expected)
    assert table_names(spark, schema) == sorted(expected), schema
    for table, rows in expected.items():
        assertDataFrameEqual(_table(spark, schema, table), rows)


def delta_version(spark, table: str) -> int:
    return int(spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()["version"])


def data_files(table_dir: Path) -> set[str]:
    """Names of the Parquet data files on disk in a Delta table's folder (committed or not)."""
    return {p.name for p in table_dir.rglob("*.parquet") if "_delta_log" not in p.parts}


def committed_files(spark, table_dir: Path) -> set[str]:
    """Names of the data files of the table's current version."""
    files = spark.read.format("delta").load(str(table_dir)).inputFiles()
    return {f.rsplit("/", 1)[-1] for f in files}


def delta_tables(spark, warehouse: Path, schema: str) -> dict:
    """Every Delta table of ``schema`` in another process's warehouse, read by path."""
    folder = warehouse / f"{schema}.db"
    return {
        d.name: spark.read.format("delta").load(str(d))
        for d in sorted(folder.iterdir())
        if (d / "_delta_log").is_dir()
    }
