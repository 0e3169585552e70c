"""Create every schema, Volume and table of an environment, idempotently (safe to repeat).

    setup_catalog.py --catalog ecom_prod --volume-root /Volumes/ecom_prod/raw \
        --model-name ecom_prod.ml.propensity --model-name ecom_prod.ml.recommender

Run once before the first load of a new catalog (``docs/deployment.md``, The first backfill),
as the service principal that will own the objects; run again after an upgrade that adds a
table. Prints one line per statement and table.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.catalog import schemas, setup
from clickstream.core.jobs import expected_failures, parse_arguments, parser


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--volume-root", required=True, help="/Volumes/<catalog>/<schema>")
    cli.add_argument("--model-name", action="append", default=[], help="repeat for each model")
    args = parse_arguments(cli, argv, "setup_catalog")
    with expected_failures("setup_catalog"):  # every name checked before Spark starts
        schemas(args.catalog, args.volume_root, args.model_name)
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("setup_catalog"):
        done = setup(spark, args.catalog, args.volume_root, args.model_name)
    print(f"setup_catalog: {len(done['statements'])} statements, {len(done['tables'])} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
