"""``make bench``: run every benchmark and write bench/RESULTS.md.

python -m bench [--only run_overhead] [--repeats N]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from bench.common import write_results

BENCHMARKS = (
    "run_overhead",
    "feature_pipeline",
    "scoring",
    "dag_parsing",
    "system_run",
    "test_suite",
    "duckdb_reference",
    "drift_calibration",
    "recommender_quality",
    "behaviour_recovery",
    "stream_ingest",
    "table_maintenance",
    "silver_redelivery",
)
# The benchmarks call job functions directly, as a spark_python_task would import them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spark_jobs"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--only", choices=BENCHMARKS, action="append")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--run-tests",
        action="store_true",
        help="test_suite: run `make test` first instead of reading the last session's timing",
    )
    args = parser.parse_args(argv)
    # The driver-side scoring baseline collects millions of rows: give the benchmark's driver
    # room for it (a JVM's heap is fixed when the first session of the process starts).
    os.environ.setdefault("LOCAL_SPARK_DRIVER_MEMORY", "8g")
    os.environ.setdefault("LOCAL_SPARK_MAX_RESULT_SIZE", "0")
    results = {}
    for name in args.only or BENCHMARKS:
        print(f"[bench] {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        if name == "test_suite":
            results[name] = module.run(repeats=args.repeats, run_tests=args.run_tests)
        else:
            results[name] = module.run(repeats=args.repeats)
    path = write_results(results)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
