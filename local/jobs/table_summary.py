"""Summarise the project's Delta tables: rows and current version per table, quarantine reasons.

Used by ``make run`` for its closing summary; also handy on Databricks to eyeball a catalog.
Writes a JSON document to ``--output`` (a Volume path).

    table_summary.py --catalog spark_catalog --output /Volumes/ecom/raw/system/run_summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import USER_FEATURES, USER_LABELS, table_version
from clickstream.core.jobs import parse_arguments
from clickstream.core.schema import identifier, table_name
from clickstream.core.volumes import local_path
from clickstream.quality.results import DQ_RESULTS

SCHEMAS = ("bronze", "silver", "gold", "monitoring")
QUARANTINE = ("bronze", "events_quarantine")


def summarise(spark: SparkSession, catalog: str) -> dict:
    catalog = identifier(catalog)  # it goes into SQL text
    existing = {row.namespace for row in spark.sql(f"SHOW SCHEMAS IN {catalog}").collect()}
    tables = []
    for schema in SCHEMAS:
        if schema not in existing:
            continue
        for row in spark.sql(f"SHOW TABLES IN {catalog}.{schema}").collect():
            if row.isTemporary:
                continue
            name = table_name(catalog, schema, row.tableName)
            version = table_version(spark, name)
            table = spark.table(name)
            # An order-independent fingerprint of the whole content: equal checksums and row
            # counts mean a rerun rewrote the same rows.
            stats = table.agg(
                F.count("*").alias("rows"),
                F.sum(F.xxhash64(*table.columns).cast("decimal(38,0)")).alias("checksum"),
            ).first()
            tables.append(
                {
                    "name": f"{schema}.{row.tableName}",
                    "rows": int(stats["rows"]),
                    "checksum": str(stats["checksum"] or 0),
                    "version": int(version),
                }
            )
    reasons: dict[str, int] = {}
    quarantine = table_name(catalog, *QUARANTINE)
    if spark.catalog.tableExists(quarantine):
        for row in spark.table(quarantine).groupBy("reason").agg(F.count("*").alias("n")).collect():
            reasons[row["reason"]] = int(row["n"])
    return {
        "catalog": catalog,
        "tables": tables,
        "quarantine_reasons": reasons,
        "features": _feature_summary(spark, catalog),
        "data_quality": _quality_summary(spark, catalog),
    }


def _quality_summary(spark: SparkSession, catalog: str, max_failures: int = 15) -> dict:
    """Expectation results per suite over all dates, and the first failed ones (if any)."""
    results = DQ_RESULTS.name(catalog)
    if not spark.catalog.tableExists(results):
        return {}
    table = spark.table(results)
    failed = F.col("status") == "failed"
    by_suite = table.groupBy("suite").agg(
        F.sum((F.col("status") != "skipped").cast("int")).alias("evaluated"),
        F.sum((F.col("status") == "passed").cast("int")).alias("passed"),
        F.sum((failed & (F.col("severity") == "blocking")).cast("int")).alias("blocking_failed"),
        F.sum((failed & (F.col("severity") == "warning")).cast("int")).alias("warning_failed"),
    )
    failures = (
        table.where(failed)
        .orderBy("ds", "severity", "suite", "expectation")
        .select("ds", "suite", "expectation", "column", "severity", "observed_value")
        .limit(max_failures)
        .collect()
    )
    return {
        "dates": table.select("ds").distinct().count(),
        "by_suite": {
            r["suite"]: {k: int(r[k] or 0) for k in r.asDict() if k != "suite"}
            for r in by_suite.collect()
        },
        "failures": [
            {
                "ds": r["ds"].isoformat(),
                "suite": r["suite"],
                "expectation": r["expectation"],
                "column": r["column"],
                "severity": r["severity"],
                "observed": r["observed_value"],
            }
            for r in failures
        ],
    }


def _feature_summary(spark: SparkSession, catalog: str) -> dict:
    """Feature rows per date and closed labels with their positive rate (empty if none yet)."""
    summary: dict = {}
    features = USER_FEATURES.name(catalog)
    if spark.catalog.tableExists(features):
        per_date = spark.table(features).groupBy("feature_date").count().collect()
        summary["rows_per_feature_date"] = {
            r["feature_date"].isoformat(): int(r["count"]) for r in sorted(per_date)
        }
    labels = USER_LABELS.name(catalog)
    if spark.catalog.tableExists(labels):
        stats = (
            spark.table(labels)
            .agg(
                F.count("*").alias("rows"),
                F.avg("purchased").alias("positive_rate"),
                F.countDistinct("feature_date").alias("dates"),
            )
            .first()
        )
        summary["labels"] = {
            "rows": int(stats["rows"]),
            "feature_dates": int(stats["dates"]),
            "positive_rate": float(stats["positive_rate"] or 0.0),
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--output", required=True, help="JSON file to write (a Volume path)")
    args = parse_arguments(parser, argv, "table_summary")
    spark = SparkSession.builder.getOrCreate()
    summary = summarise(spark, args.catalog)
    output = Path(local_path(args.output))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2))
    for table in summary["tables"]:
        print(f"{table['name']}: {table['rows']} rows, version {table['version']}")
    print(f"summary written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
