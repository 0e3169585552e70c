"""Write the operations report of the pipelines' Databricks runs, from ``monitoring.job_runs``.

    report_operations.py --ds 2019-11-08 --catalog spark_catalog \
        --end-time 2019-11-09T00:00:00+00:00 [--days 30] \
        --output /Volumes/ecom/raw/reports/pipeline_monitoring/2019-11-08/operations \
        [--trend-runs 7] [--trend-ratio 1.3] [--trend-min-seconds 60] [--scale 16] \
        [--chain-dag data_quality_validation ...] [--monitoring-schema monitoring]

The runs that started in ``[end-time - days, end-time)``: runs, failures and retries per job,
the duration trend per job with the growing ones flagged, the estimated cost by DAG and by
logical date, and one day of the daily chain at 1x and ``--scale`` x the volume. Writes
``<output>.html`` (self-contained) and ``<output>.json`` (the summary). See
``clickstream/monitoring/operations.py``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.monitoring.operations import (
    DAILY_CHAIN,
    GROWING,
    ReportConfig,
    TrendRule,
    report_operations,
)


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--end-time {value!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True, help="logical date of the report")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--end-time", required=True, help="end of the window, ISO 8601 (excluded)")
    cli.add_argument("--days", type=int, default=30, help="length of the window")
    cli.add_argument("--output", required=True, help="path without extension (a Volume path)")
    cli.add_argument("--trend-runs", type=int, default=TrendRule.runs)
    cli.add_argument("--trend-ratio", type=float, default=TrendRule.ratio)
    cli.add_argument("--trend-min-seconds", type=float, default=TrendRule.min_seconds)
    cli.add_argument("--scale", type=float, default=16.0, help="volume factor of the chain's day")
    cli.add_argument("--chain-dag", action="append", help="a DAG of the daily chain (repeat)")
    cli.add_argument("--monitoring-schema", default="monitoring")
    args = parse_arguments(cli, argv, "report_operations")
    with expected_failures("report_operations"):
        config = ReportConfig(
            ds=args.ds,
            end=_instant(args.end_time),
            days=args.days,
            catalog=args.catalog,
            output=args.output,
            monitoring_schema=args.monitoring_schema,
            rule=TrendRule(args.trend_runs, args.trend_ratio, args.trend_min_seconds),
            chain_dags=tuple(args.chain_dag or DAILY_CHAIN),
            scale=args.scale,
        )
        spark = SparkSession.builder.getOrCreate()
        summary = report_operations(spark, config)
    print(
        f"report_operations: {summary['runs']} runs in {config.start:%Y-%m-%d %H:%M} .. "
        f"{config.end:%Y-%m-%d %H:%M} UTC: {summary['failed']} failed, {summary['retries']} "
        f"retries, {summary['execution_seconds'] / 60:.1f} min of execution, estimated "
        f"${summary['estimated_cost_usd']:.2f}"
    )
    for job in summary["jobs"]:
        trend = job["trend"]
        if trend["status"] == GROWING:
            print(
                f"report_operations: GROWING {job['dag_id']}.{job['task_id']}: median "
                f"{trend['previous_median']:.0f} s -> {trend['recent_median']:.0f} s "
                f"(x{trend['ratio']:.2f})"
            )
    chain = summary["daily_chain"]
    if chain:
        figures = ", ".join(f"{k}x ${v['cost_usd']:.2f}" for k, v in chain["at"].items())
        print(f"report_operations: one day of the daily chain ({chain['logical_date']}): {figures}")
    print(f"report_operations: report {summary['report']}, summary {config.output}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
