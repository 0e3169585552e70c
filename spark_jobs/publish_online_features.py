"""Publish the feature rows of one date to the online feature table, or check their skew.

    publish_online_features.py --ds 2019-10-01 --run-ts 2019-10-02T00:00:00+00:00 \
        --catalog spark_catalog
    publish_online_features.py --check-skew --ds 2019-10-01 --catalog spark_catalog

Publishing MERGEs ``silver.user_features`` of ``ds`` into ``gold.user_features_online`` on
``user_id`` (latest feature date wins) and compacts/clusters it for key lookups. ``--run-ts``
(the run's data-interval end) is stored as ``updated_at``. ``--check-skew`` compares the online
rows with the offline rows of ``ds`` and fails, naming the columns, on any difference.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.pipeline.online import check_skew, publish_online


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True, help="feature date to publish, YYYY-MM-DD")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--run-ts", help="ISO timestamp stored as updated_at (publish)")
    cli.add_argument("--check-skew", action="store_true", help="compare, do not publish")
    cli.add_argument("--silver-schema", default="silver")
    cli.add_argument("--gold-schema", default="gold")
    args = parse_arguments(cli, argv, "publish_online_features")
    if not args.check_skew and not args.run_ts:
        cli.error("publishing needs --run-ts (the run's data-interval end)")
    spark = SparkSession.builder.getOrCreate()
    schemas = {"silver_schema": args.silver_schema, "gold_schema": args.gold_schema}
    with expected_failures("publish_online_features"):
        if args.check_skew:
            checked = check_skew(spark, ds=args.ds, catalog=args.catalog, **schemas)
            print(f"{args.ds}: online equals offline for {checked} feature rows")
        else:
            table = publish_online(
                spark, ds=args.ds, run_ts=args.run_ts, catalog=args.catalog, **schemas
            )
            print(f"{args.ds}: feature rows published to {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
