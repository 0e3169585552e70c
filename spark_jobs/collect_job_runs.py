"""Merge the Databricks runs the DAGs started into ``monitoring.job_runs``, with their cost.

    collect_job_runs.py --ds 2019-11-08 --catalog spark_catalog \
        --input /Volumes/ecom/raw/reports/pipeline_monitoring/2019-11-08/job_runs.jsonl \
        --prices '{"name": ..., "jobs_usd_per_dbu": 0.3, ...}' \
        [--monitoring-schema monitoring] [--airflow-run-id ...]

``--input`` holds one ``runs/get`` answer a line, written by the ``list_job_runs`` task of the
``pipeline_monitoring`` DAG (the Jobs API's runs of its window). Runs named
``<dag_id>.<task_id> [<ds>]`` (what the DAGs' job tasks set) are merged by ``run_id``: a second
collection of the same runs updates their rows (a run in flight gets its final state), never
duplicates them; other runs are not the DAGs' and are skipped, and counted. ``--prices`` is the
environment's price table (``include/ecom_airflow/config.py``). See
``clickstream/monitoring/job_runs.py``.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.monitoring.job_runs import collect, parse_prices, read_runs


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True, help="logical date of the collection")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--input", required=True, help="JSON lines of runs (a Volume path)")
    cli.add_argument("--prices", required=True, help="the price table, JSON")
    cli.add_argument("--monitoring-schema", default="monitoring")
    cli.add_argument("--airflow-run-id", default="manual")
    args = parse_arguments(cli, argv, "collect_job_runs")
    with expected_failures("collect_job_runs"):
        prices = parse_prices(args.prices)
        runs = read_runs(args.input)
        print(f"collect_job_runs: {len(runs)} runs listed in {args.input}", flush=True)
        spark = SparkSession.builder.getOrCreate()
        done = collect(
            spark,
            runs,
            prices,
            catalog=args.catalog,
            schema=args.monitoring_schema,
            collection_date=args.ds,
            airflow_run_id=args.airflow_run_id,
        )
    skipped = done["skipped"]
    examples = ", ".join(sorted(set(skipped))[:5])
    print(
        f"collect_job_runs: merged {done['merged']} runs into {done['table']}; skipped "
        f"{len(skipped)} not started by the DAGs" + (f" (e.g. {examples})" if skipped else "")
    )
    rows = done["rows"]
    if rows:
        execution = sum(r["execution_seconds"] for r in rows)
        costs = [r["estimated_cost_usd"] for r in rows if r["estimated_cost_usd"] is not None]
        print(
            f"collect_job_runs: {execution / 60:.1f} min of execution, estimated "
            f"${sum(costs):.2f} ({len(costs)} of {len(rows)} runs priced, "
            f"price table {prices['name']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
