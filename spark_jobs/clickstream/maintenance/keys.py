"""Every table the pipelines write, with the key its files are clustered by in maintenance.

The key of a table is the column its readers filter or join on *within* a partition: partition
pruning already selects the dates, and Z-ordering the files of a partition by the key lets Delta
skip the files whose ``user_id`` range misses a lookup or a join's key range (data skipping on
the per-file min/max statistics). A table read only as whole partitions, or small enough to be a
few files, is compacted without a key. The liquid-clustered online table is clustered by
``OPTIMIZE`` itself (its ``CLUSTER BY``), never Z-ordered.

Plain Python, no Spark: ``tests/spark_jobs/maintenance`` checks the list against the table
contracts (every contract once, each key a column of it and not a partition column).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableKeys:
    """How maintenance clusters one table ``<schema>.<table>`` and why (``read_by``)."""

    schema: str
    table: str
    zorder_by: tuple[str, ...]
    read_by: str


TABLES: tuple[TableKeys, ...] = (
    TableKeys("bronze", "events", (), "whole ingest_date partitions (silver build, bronze DQ)"),
    TableKeys("bronze", "events_quarantine", (), "whole ingest_date partitions (bronze DQ)"),
    TableKeys("bronze", "events_ingest_log", (), "a few rows per date (ingest, DQ)"),
    TableKeys("bronze", "events_ingest_files", (), "a few rows per landed file and date"),
    TableKeys(
        "silver",
        "events",
        ("user_id",),
        "event-date ranges grouped or joined by user_id (daily activity, recommender "
        "interactions, labels' purchases)",
    ),
    TableKeys(
        "silver",
        "user_daily_activity",
        ("user_id",),
        "30 event dates grouped by user_id (every feature run)",
    ),
    TableKeys(
        "silver",
        "user_features",
        ("user_id",),
        "feature-date windows joined with the labels on user_id (training), one date merged "
        "into the online table by user_id",
    ),
    TableKeys(
        "silver",
        "user_labels",
        ("user_id",),
        "feature-date windows joined on user_id with the features (training) or the scores "
        "(performance)",
    ),
    TableKeys(
        "gold",
        "user_features_online",
        (),
        "point lookups by user_id: liquid clustered by user_id, which OPTIMIZE applies",
    ),
    TableKeys(
        "gold",
        "propensity_scores",
        ("user_id",),
        "a score date joined with its labels on user_id (performance), lookups by user_id",
    ),
    TableKeys("gold", "recommendations", ("user_id",), "a score date, lookups by user_id"),
    TableKeys("monitoring", "dq_results", (), "a few rows per date and suite"),
    TableKeys("monitoring", "drift_metrics", (), "a few rows per column and month"),
    TableKeys("monitoring", "model_performance", (), "a few rows per score date"),
    TableKeys("monitoring", "job_runs", (), "a few rows per run, read by date range"),
)
