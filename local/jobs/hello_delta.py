"""Smoke job: write a small Delta table by name and read it back. ``--table schema.name``."""

from __future__ import annotations

import argparse
import re

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

# The name ends up in SQL text: two plain identifiers, nothing else (no clickstream import here,
# the examples run with only their own folder on sys.path).
TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*")

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True)
    args = parser.parse_args()
    if not TABLE.fullmatch(args.table):
        raise SystemExit(f"hello_delta failed: --table must be schema.name, got {args.table!r}")
    spark = SparkSession.builder.getOrCreate()
    schema = args.table.split(".")[0]
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    spark.range(10).withColumn("square", F.col("id") * F.col("id")).write.format("delta").mode(
        "overwrite"
    ).saveAsTable(args.table)
    total = spark.table(args.table).agg(F.sum("square")).first()[0]
    print(f"{args.table}: sum of squares {total}")
    assert total == 285
