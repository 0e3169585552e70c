"""Top-10 product recommendations for every active user of one date, with lineage.

    recommend_products.py --ds 2019-10-31 --catalog spark_catalog \
        --model-name ecom_recommender --airflow-run-id ... [--exclude-days 30]

Uses ``models:/<name>@champion`` (resolved once to a version), excludes what each user bought
in the ``--exclude-days`` up to ``--ds``, and replaces the ``score_date = ds`` partition of
``gold.recommendations``. Fails with what to run when there is no champion yet.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.models.recommender.serving import recommend_for_date


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True)
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--model-name", required=True)
    cli.add_argument("--airflow-run-id", default="manual")
    cli.add_argument("--exclude-days", type=int, default=30)
    cli.add_argument("--silver-schema", default="silver")
    cli.add_argument("--gold-schema", default="gold")
    args = parse_arguments(cli, argv, "recommend_products")
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("recommend_products"):
        result = recommend_for_date(
            spark,
            ds=args.ds,
            catalog=args.catalog,
            model_name=args.model_name,
            airflow_run_id=args.airflow_run_id,
            exclude_days=args.exclude_days,
            silver_schema=args.silver_schema,
            gold_schema=args.gold_schema,
        )
    print(f"{args.ds}: recommendations from {result['model']} written to {result['table']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
