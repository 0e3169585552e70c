"""``python -m local.story.cost``: what one logical date of the daily chain costs, computed from
the runs ``make run`` measured (``monitoring.job_runs``) and the price table, at 1x and at
larger volumes.

    python -m local.story.cost [--ds 2026-10-31] [--scale 16 --scale 64] [--setup-minutes 5]
                               [--dag data_quality_validation --dag ...] [--json]

Each task of the chain's DAGs on that date is priced once, on its successful run (retries are
counted apart): the hourly price of its compute over its billed time, the execution multiplied
by the volume factor (linear in volume), the cluster start as measured or ``--setup-minutes``
(the local workspace's warm drivers start in seconds; a Databricks job cluster takes minutes).
Locally every run is priced as if on the dev cluster spec (``LOCAL.prices`` in
``include/ecom_airflow/config.py``). ``--ds`` defaults to the date the chain ran most completely.

Reads the table of the local state (``ECOM_LOCAL_DIR``, default ``.local``) with a local Spark
session, so the stack need not be up. On Databricks, the query in docs/pipeline_monitoring.md
gives the same figures from the environment's table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _folder in ("spark_jobs", "include"):
    if str(ROOT / _folder) not in sys.path:
        sys.path.insert(0, str(ROOT / _folder))

from clickstream.core.contracts import JOB_RUNS  # noqa: E402
from clickstream.monitoring.operations import DAILY_CHAIN, chain_day_cost, read_rows  # noqa: E402
from ecom_airflow.config import LOCAL  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(
        prog="python -m local.story.cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("--ds", help="logical date of the chain (default: the most complete one)")
    cli.add_argument(
        "--scale", type=float, action="append", help="volume factor (repeat; default: 1 and 16)"
    )
    cli.add_argument(
        "--setup-minutes",
        type=float,
        help="a cluster start per task instead of the measured setup (e.g. 5 for a job cluster)",
    )
    cli.add_argument("--dag", action="append", help=f"a DAG of the chain (default: {DAILY_CHAIN})")
    cli.add_argument("--catalog", default=LOCAL.catalog)
    cli.add_argument("--monitoring-schema", default="monitoring")
    cli.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = cli.parse_args(argv)
    if args.scale and any(s <= 0 for s in args.scale):
        cli.error("--scale must be positive")
    if args.setup_minutes is not None and args.setup_minutes < 0:
        cli.error("--setup-minutes must be at least 0")
    return args


def day_cost(spark, args: argparse.Namespace) -> dict | None:
    """The chain's day (see :func:`chain_day_cost`), read from the table; None without runs."""
    from pyspark.sql import functions as F

    name = JOB_RUNS.name(args.catalog, args.monitoring_schema)
    if not spark.catalog.tableExists(name):
        raise SystemExit(
            f"cost: {name} does not exist in this state: run `make run` first (its pipeline "
            "monitoring stage fills it)"
        )
    dags = tuple(args.dag or DAILY_CHAIN)
    rows = read_rows(spark.table(name).where(F.col("dag_id").isin(*dags)))
    return chain_day_cost(
        rows,
        ds=args.ds,
        dags=dags,
        scales=tuple(args.scale or (1.0, 16.0)),
        setup_seconds=None if args.setup_minutes is None else args.setup_minutes * 60,
    )


def render(day: dict) -> str:
    setup = (
        "as measured"
        if day["setup_seconds_assumed"] is None
        else f"{day['setup_seconds_assumed'] / 60:g} min per task (assumed)"
    )
    lines = [
        f"one day of the daily chain, logical date {day['logical_date']}: {day['tasks']} tasks "
        f"of {', '.join(day['dags'])}",
        f"  priced: {'; '.join(day['price_basis'])}; cluster start {setup}",
        f"  {'volume':>7s} {'execution min':>14s} {'billed min':>11s} {'est. cost':>10s} "
        f"{'at max size':>12s}",
    ]
    for figures in day["at"].values():
        cost, most = f"${figures['cost_usd']:.2f}", f"${figures['cost_max_usd']:.2f}"
        lines.append(
            f"  {figures['scale']:6g}x {figures['execution_seconds'] / 60:14.1f} "
            f"{figures['billed_seconds'] / 60:11.1f} {cost:>10s} {most:>12s}"
        )
    lines.append(f"  retries on that date: {day['retries']} runs, ${day['retries_cost_usd']:.2f}")
    for label, key in (
        ("no run on that date", "missing_dags"),
        ("no successful run", "failed_tasks"),
        ("no price", "unpriced_tasks"),
    ):
        if day[key]:
            lines.append(f"  {label}: {', '.join(day[key])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from local.spark.runtime import LocalLayout, build_session

    layout = LocalLayout.from_env()
    if not layout.warehouse_dir.is_dir():
        print(f"cost: no local state at {layout.state}: run `make run` first", file=sys.stderr)
        return 1
    print(f"[cost] reading {JOB_RUNS.schema}.{JOB_RUNS.table} of {layout.state}", file=sys.stderr)
    spark = build_session(layout)
    try:
        day = day_cost(spark, args)
    finally:
        spark.stop()
    if day is None:
        wanted = f"on {args.ds}" if args.ds else "at all"
        print(f"cost: no run of the daily chain {wanted} in the table", file=sys.stderr)
        return 1
    print(json.dumps(day, indent=2) if args.json else render(day))
    return 0


if __name__ == "__main__":
    sys.exit(main())
