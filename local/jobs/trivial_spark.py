"""The smallest job that uses Spark: count a 1000-row range. Measures per-run overhead."""

from __future__ import annotations

from pyspark.sql import SparkSession

if __name__ == "__main__":
    spark = SparkSession.builder.getOrCreate()
    print(f"rows: {spark.range(1000).count()}")
