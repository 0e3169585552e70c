"""Smoke job: write a small Delta table by name and read it back. ``--table schema.name``."""

from __future__ import annotations

import argparse

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True)
    args = parser.parse_args()
    spark = SparkSession.builder.getOrCreate()
    schema = args.table.split(".")[0]
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    spark.range(10).withColumn("square", F.col("id") * F.col("id")).write.format("delta").mode(
        "overwrite"
    ).saveAsTable(args.table)
    total = spark.table(args.table).agg(F.sum("square")).first()[0]
    print(f"{args.table}: sum of squares {total}")
    assert total == 285
