"""Smoke job: touch Spark, then sleep ``--seconds`` (for timeouts, cancels and queueing)."""

from __future__ import annotations

import argparse
import time

from pyspark.sql import SparkSession

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1)
    args = parser.parse_args()
    SparkSession.builder.getOrCreate().range(10).count()
    print(f"sleeping {args.seconds}s", flush=True)
    time.sleep(args.seconds)
    print("done")
