"""First load of a range of history in one job: bronze, silver, features and labels.

    load_history.py --start-ds 2019-10-01 --end-ds 2019-12-31 --catalog spark_catalog \
        --landing-dir /Volumes/ecom/raw/landing/events [--label-horizon-days 7]

The daily DAGs process one date per run: right for every day after go-live, slow for months
of history (three DAG runs and about ten tasks per date). This job does to the tables what
those runs would, for the whole range, with the same parsing, cleaning and feature code
(``clickstream/pipeline/history.py``): every date's files into bronze and quarantine in one write
(rows in = bronze + quarantined checked per date), one silver MERGE, then the features and
labels in bulk mode. The tables end as the daily runs would leave them, so the DAGs take over
from the day after the range (or rerun any date of it) without a seam. It does not validate
(no Great Expectations reports) and records no Airflow runs: backfill the DAGs for the dates
that need them.
"""

from __future__ import annotations

import sys
import time

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.core.schema import date_range
from clickstream.pipeline.features import build_feature_range
from clickstream.pipeline.history import silver_range
from clickstream.pipeline.ingest import ingest_range


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--start-ds", required=True, help="first date, YYYY-MM-DD")
    cli.add_argument("--end-ds", required=True, help="last date (inclusive), YYYY-MM-DD")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--landing-dir", required=True, help="folder of the <ds>/ folders")
    cli.add_argument("--label-horizon-days", type=int, default=7)
    cli.add_argument("--bronze-schema", default="bronze")
    cli.add_argument("--silver-schema", default="silver")
    args = parse_arguments(cli, argv, "load_history")
    spark = SparkSession.builder.getOrCreate()
    started = time.monotonic()
    with expected_failures("load_history"):
        days = date_range(args.start_ds, args.end_ds)
        counts = ingest_range(
            spark,
            start=days[0],
            end=days[-1],
            catalog=args.catalog,
            landing_dir=args.landing_dir,
            schema=args.bronze_schema,
        )
        for ds, c in counts.items():
            print(
                f"{ds}: {c['rows_in']} rows in, {c['bronze']} bronze, "
                f"{c['quarantined']} quarantined"
            )
        print(f"bronze of {len(days)} day(s) landed ({time.monotonic() - started:.0f} s)")
        events = silver_range(
            spark,
            start=days[0],
            end=days[-1],
            catalog=args.catalog,
            bronze_schema=args.bronze_schema,
            silver_schema=args.silver_schema,
        )
        print(
            f"{sum(events.values())} events merged into silver over {len(events)} event "
            f"date(s) ({time.monotonic() - started:.0f} s)"
        )
        build_feature_range(
            spark,
            start=days[0],
            end=days[-1],
            catalog=args.catalog,
            horizon_days=args.label_horizon_days,
            silver_schema=args.silver_schema,
        )
        keys = ("rows_in", "bronze", "quarantined")
        total = {k: sum(c[k] for c in counts.values()) for k in keys}
    print(
        f"history {days[0]}..{days[-1]} loaded in {time.monotonic() - started:.0f} s: "
        f"{total['rows_in']} rows in = {total['bronze']} bronze + "
        f"{total['quarantined']} quarantined"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
