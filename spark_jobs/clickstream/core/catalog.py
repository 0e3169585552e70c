"""Every schema, Volume and table an environment uses, created idempotently: the set-up job.

The jobs create their own tables (``ensure_table``) and schemas, but not what no table names:
the schema of the Unity Catalog model names (``<catalog>.ml.propensity``), without which the
first training on a fresh catalog fails to register its model, and the schema of the Volumes
(``/Volumes/<catalog>/raw/...``). :func:`setup` creates all of it, and every contract table,
in one idempotent pass (``spark_jobs/setup_catalog.py``; ``docs/deployment.md``), and the
trainings create their model's schema themselves (:func:`ensure_model_schema`).

On Unity Catalog the Volumes are created too (``CREATE VOLUME``) and the online table gets its
primary key (``ensure_table``); locally the Volumes are folders and Delta has no constraints.
"""

from __future__ import annotations

from typing import Any

from clickstream.core.contracts import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    JOB_RUNS,
    ONLINE_FEATURES,
    PROPENSITY_SCORES,
    RECOMMENDATIONS,
    SILVER_EVENTS,
    USER_DAILY_ACTIVITY,
    USER_FEATURES,
    USER_LABELS,
    Contract,
    ensure_table,
)
from clickstream.core.schema import identifier, table_name
from clickstream.monitoring.drift import DRIFT_METRICS
from clickstream.monitoring.performance import MODEL_PERFORMANCE
from clickstream.pipeline.ingest import BRONZE_INGEST_FILES, BRONZE_INGEST_LOG
from clickstream.quality.results import DQ_RESULTS

# Every table the pipelines write (a test checks the list against the Contract declarations).
CONTRACTS: tuple[Contract, ...] = (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    BRONZE_INGEST_LOG,
    BRONZE_INGEST_FILES,
    SILVER_EVENTS,
    USER_DAILY_ACTIVITY,
    USER_FEATURES,
    USER_LABELS,
    ONLINE_FEATURES,
    PROPENSITY_SCORES,
    RECOMMENDATIONS,
    DQ_RESULTS,
    DRIFT_METRICS,
    MODEL_PERFORMANCE,
    JOB_RUNS,
)
# Raw daily files; HTML reports and JSON summaries; streaming checkpoints.
VOLUMES = ("landing", "reports", "checkpoints")
SESSION_CATALOG = "spark_catalog"  # local Spark's catalog: no Volumes, no constraints


def model_schema(model_name: str) -> tuple[str, str] | None:
    """(catalog, schema) of a Unity Catalog model name ``<catalog>.<schema>.<model>``; None for
    a workspace-registry name without dots (the local MLflow registry's)."""
    parts = model_name.split(".")
    if len(parts) == 1:
        return None
    if len(parts) != 3:
        raise ValueError(
            f"model name {model_name!r} is neither <model> nor <catalog>.<schema>.<model>"
        )
    return identifier(parts[0]), identifier(parts[1])


def volume_schema(volume_root: str) -> tuple[str, str]:
    """(catalog, schema) of a Volumes root ``/Volumes/<catalog>/<schema>``."""
    parts = volume_root.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "Volumes":
        raise ValueError(f"volume root {volume_root!r} is not /Volumes/<catalog>/<schema>")
    return identifier(parts[1]), identifier(parts[2])


def schemas(catalog: str, volume_root: str, model_names: list[str]) -> list[tuple[str, str]]:
    """Every (catalog, schema) the environment's tables, Volumes (Unity Catalog) and models
    use, sorted."""
    found = {(identifier(catalog), identifier(c.schema)) for c in CONTRACTS}
    volumes = volume_schema(volume_root)
    if catalog != SESSION_CATALOG:  # local Volumes are folders, outside any catalog
        found.add(volumes)
    found |= {s for s in (model_schema(name) for name in model_names) if s is not None}
    return sorted(found)


def statements(catalog: str, volume_root: str, model_names: list[str]) -> list[str]:
    """The SQL of the set-up before the tables: schemas, then (Unity Catalog) Volumes."""
    sql = [
        f"CREATE SCHEMA IF NOT EXISTS {identifier(c)}.{identifier(s)}"
        for c, s in schemas(catalog, volume_root, model_names)
    ]
    if catalog != SESSION_CATALOG:
        sql += [
            f"CREATE VOLUME IF NOT EXISTS {table_name(*volume_schema(volume_root), volume)}"
            for volume in VOLUMES
        ]
    return sql


def setup(
    spark, catalog: str, volume_root: str, model_names: list[str], log=print
) -> dict[str, Any]:
    """Run :func:`statements`, then ``ensure_table`` for every contract; what was done."""
    done = statements(catalog, volume_root, model_names)
    for sql in done:
        log(f"[setup] {sql}")
        spark.sql(sql)
    tables = []
    for contract in CONTRACTS:
        tables.append(ensure_table(spark, contract, catalog))
        log(f"[setup] table {tables[-1]}")
    return {"statements": done, "tables": tables}


def ensure_model_schema(spark, model_name: str) -> str | None:
    """Create the schema of a Unity Catalog model name if missing (a no-op for a name without
    one); the schema created, or None."""
    found = model_schema(model_name)
    if found is None:
        return None
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {identifier(found[0])}.{identifier(found[1])}")
    return ".".join(found)
