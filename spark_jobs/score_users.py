"""Score every active user of one date with the champion propensity model.

    score_users.py --ds 2019-10-31 --catalog spark_catalog --model-name ecom_propensity \
        --airflow-run-id scheduled__2019-11-01T00:00:00+00:00

Resolves ``models:/<name>@champion`` to a version once, scores the users of the online feature
table with feature date ``ds`` on Spark (broadcast model, ``mapInPandas``), and replaces the
``score_date = ds`` partition of ``gold.propensity_scores``. Fails with what to run when there
is no champion yet: serving never trains.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.models.propensity.serving import score_users


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True, help="score date (the logical date), YYYY-MM-DD")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--model-name", required=True)
    cli.add_argument("--airflow-run-id", default="manual")
    cli.add_argument("--gold-schema", default="gold")
    args = parse_arguments(cli, argv, "score_users")
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("score_users"):
        result = score_users(
            spark,
            ds=args.ds,
            catalog=args.catalog,
            model_name=args.model_name,
            airflow_run_id=args.airflow_run_id,
            gold_schema=args.gold_schema,
        )
    print(f"{args.ds}: active users scored with {result['model']} into {result['table']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
