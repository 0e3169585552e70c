"""Build the offline feature table (``silver.user_features``) and close due labels.

    build_user_features.py --ds 2019-10-31 --catalog spark_catalog [--label-horizon-days 7]
    build_user_features.py --start-ds 2019-10-01 --end-ds 2019-10-31 --catalog spark_catalog

Daily mode (``--ds``): replaces the feature rows of ``ds`` (as of the end of ``ds``, from the
30-day horizon only), then MERGEs the labels of feature date ``ds - horizon`` whose window has
just closed. Bulk mode (``--start-ds/--end-ds``, first load or backfill): the feature rows of
every date in the range in one Spark job, then the labels of every feature date whose window
closes inside the range; same output as running the days one by one.

See ``clickstream/pipeline/features.py`` for the point-in-time rules and the feature definitions.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.pipeline.features import build_feature_range


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", help="logical date, YYYY-MM-DD (daily mode)")
    cli.add_argument("--start-ds", help="first date of a bulk range")
    cli.add_argument("--end-ds", help="last date of a bulk range (inclusive)")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--silver-schema", default="silver")
    cli.add_argument("--label-horizon-days", type=int, default=7)
    args = parse_arguments(cli, argv, "build_user_features")
    if bool(args.ds) == bool(args.start_ds or args.end_ds):
        cli.error("give either --ds or both --start-ds and --end-ds")
    if not args.ds and not (args.start_ds and args.end_ds):
        cli.error("bulk mode needs both --start-ds and --end-ds")
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("build_user_features"):
        start, end = (args.ds, args.ds) if args.ds else (args.start_ds, args.end_ds)
        build_feature_range(
            spark,
            start=start,
            end=end,
            catalog=args.catalog,
            horizon_days=args.label_horizon_days,
            silver_schema=args.silver_schema,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
