"""Compact, cluster and vacuum every table, keeping every Delta version a model pins.

    maintain_tables.py --catalog spark_catalog --retention-hours 720 --pin-margin-hours 192 \
        --model-name ecom_propensity --model-name ecom_recommender [--zorder-since 2019-10-20]

For each table that exists (a missing one is skipped and said so): ``OPTIMIZE`` with the
table's Z-order key (``clickstream/maintenance/keys.py``; Z-ordering only the date partitions
from ``--zorder-since`` on, compacting the older ones), then ``VACUUM`` with a retention of
``--retention-hours``, raised per table to the age of the oldest version pinned there plus
``--pin-margin-hours``. Pinned: every Delta version recorded in the lineage of every version
still registered of each ``--model-name`` (MLflow), and the silver version the daily activity's
next refresh reads the change feed after. Prints per table what it did: files and bytes before
and after, the retention and what it kept, files deleted, time taken.
"""

from __future__ import annotations

import sys
from datetime import timedelta

from mlflow import MlflowClient
from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.core.schema import parse_ds
from clickstream.maintenance.pins import model_name, model_pins, pipeline_pins
from clickstream.maintenance.tables import maintain_tables

SCHEMAS = ("bronze", "silver", "gold", "monitoring")


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--catalog", required=True)
    cli.add_argument(
        "--retention-hours",
        type=float,
        required=True,
        help="keep files a later version removed for at least this long",
    )
    cli.add_argument(
        "--pin-margin-hours",
        type=float,
        default=192.0,
        help="a pinned version stays readable this long beyond its age (until the next run)",
    )
    cli.add_argument(
        "--model-name",
        action="append",
        required=True,
        help="a registered model whose versions pin Delta versions (repeat for each model)",
    )
    cli.add_argument("--zorder-since", help="Z-order only date partitions from this day on")
    for schema in SCHEMAS:
        cli.add_argument(f"--{schema}-schema", default=schema)
    args = parse_arguments(cli, argv, "maintain_tables")
    if args.retention_hours < 0 or args.pin_margin_hours < 0:
        cli.error("--retention-hours and --pin-margin-hours must not be negative")
    with expected_failures("maintain_tables"):
        if args.zorder_since is not None:
            args.zorder_since = parse_ds(args.zorder_since)
        for name in args.model_name:
            model_name(name)
    spark = SparkSession.builder.getOrCreate()
    schemas = {schema: getattr(args, f"{schema}_schema") for schema in SCHEMAS}
    with expected_failures("maintain_tables"):
        pins = model_pins(MlflowClient(), args.model_name)
        pins += pipeline_pins(spark, catalog=args.catalog, silver_schema=schemas["silver"])
        maintain_tables(
            spark,
            catalog=args.catalog,
            retention=timedelta(hours=args.retention_hours),
            pins=pins,
            margin=timedelta(hours=args.pin_margin_hours),
            zorder_since=args.zorder_since,
            schemas=schemas,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
