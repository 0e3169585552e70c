"""First load of a range of history in one job: bronze, silver, features and labels.

    load_history.py --start-ds 2019-10-01 --end-ds 2019-12-31 --catalog spark_catalog \
        --landing-dir /Volumes/ecom/raw/landing/events [--label-horizon-days 7]

The daily DAGs process one date per run: right for every day after go-live, slow for months
of history (three DAG runs and about ten tasks per date). This job runs, in one Spark session,
what those runs do to the tables for every date of the range, with the same library
functions: ``ingest_events`` (date by date, rows in = bronze + quarantined checked for each),
``build_silver_events`` (date by date, in order), then ``build_user_features`` in bulk mode.
The tables end as the daily runs would leave them, so the DAGs take over from the day after
the range (or rerun any date of it) without a seam. It does not validate (no Great
Expectations reports) and records no Airflow runs: backfill the DAGs for the dates that need
them.
"""

from __future__ import annotations

import sys
import time

from pyspark.sql import SparkSession

from clickstream.features import build_feature_range
from clickstream.ingest import ingest
from clickstream.jobs import expected_failures, parser
from clickstream.schema import date_range
from clickstream.silver import build_silver_events


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--start-ds", required=True, help="first date, YYYY-MM-DD")
    cli.add_argument("--end-ds", required=True, help="last date (inclusive), YYYY-MM-DD")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--landing-dir", required=True, help="folder of the <ds>/ folders")
    cli.add_argument("--label-horizon-days", type=int, default=7)
    cli.add_argument("--bronze-schema", default="bronze")
    cli.add_argument("--silver-schema", default="silver")
    args = cli.parse_args(argv)
    spark = SparkSession.builder.getOrCreate()
    started = time.monotonic()
    with expected_failures("load_history"):
        days = date_range(args.start_ds, args.end_ds)
        totals = {"rows_in": 0, "bronze": 0, "quarantined": 0}
        for i, ds in enumerate(days, 1):
            counts = ingest(
                spark,
                ds=ds,
                catalog=args.catalog,
                landing_dir=args.landing_dir,
                schema=args.bronze_schema,
            )
            silver = build_silver_events(
                spark,
                ds=ds,
                catalog=args.catalog,
                bronze_schema=args.bronze_schema,
                silver_schema=args.silver_schema,
            )
            for key in totals:
                totals[key] += counts[key]
            print(
                f"[{i}/{len(days)}] {ds}: {counts['rows_in']} rows in, {counts['bronze']} "
                f"bronze, {counts['quarantined']} quarantined, {silver['events']} silver "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
        build_feature_range(
            spark,
            start=days[0],
            end=days[-1],
            catalog=args.catalog,
            horizon_days=args.label_horizon_days,
            silver_schema=args.silver_schema,
        )
    print(
        f"history {days[0]}..{days[-1]} loaded in {time.monotonic() - started:.0f} s: "
        f"{totals['rows_in']} rows in = {totals['bronze']} bronze + "
        f"{totals['quarantined']} quarantined"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
