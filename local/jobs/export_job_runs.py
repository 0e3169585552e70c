"""Write the rows of ``monitoring.job_runs`` as JSON: what ``make run`` checks against the
workspace's ``runs/get``.

    export_job_runs.py --catalog spark_catalog --output /Volumes/ecom/raw/system/job_runs.json \
        [--monitoring-schema monitoring]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from clickstream.core.contracts import JOB_RUNS
from clickstream.core.jobs import parse_arguments
from clickstream.core.volumes import local_path

COLUMNS = (
    "run_id",
    "run_name",
    "life_cycle_state",
    "result_state",
    "queue_seconds",
    "setup_seconds",
    "execution_seconds",
    "cleanup_seconds",
    "total_seconds",
    "estimated_cost_usd",
)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--output", required=True)
    cli.add_argument("--monitoring-schema", default="monitoring")
    args = parse_arguments(cli, argv, "export_job_runs")
    spark = SparkSession.builder.getOrCreate()
    name = JOB_RUNS.name(args.catalog, args.monitoring_schema)
    rows = (
        [r.asDict() for r in spark.table(name).select(*COLUMNS).collect()]
        if spark.catalog.tableExists(name)
        else []
    )
    path = Path(local_path(args.output))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"export_job_runs: {len(rows)} rows of {name} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
