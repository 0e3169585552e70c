"""Train the ALS recommender as of a date and decide whether it becomes the champion.

    train_recommender.py --ds 2019-10-31 --catalog spark_catalog --model-name ecom_recommender \
        --experiment /Shared/ecom/recommender [--train-days 28] [--eval-days 7] [--margin 0] \
        [--tuning-budget 300] [--ground-truth /Volumes/ecom/raw/landing/ground_truth/users.csv]

Tunes ALS's rank, regularisation and alpha on the same windows shifted ``--eval-days``
earlier, trains on the interactions of the ``--train-days`` before the evaluation window (the
``--eval-days`` ending at ``--ds``), logs precision@10 and recall@10 next to the global and
category-aware popularity baselines (and, with the generator's ground truth, the ceiling of the
true probabilities), registers the model as ``challenger`` and moves ``champion`` by the same
rule as the propensity model (see ``clickstream/models/promotion.py``).
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.catalog import ensure_model_schema
from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.models.recommender.training import RecommenderConfig, train_recommender


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True, help="as-of date, YYYY-MM-DD")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--silver-schema", default="silver")
    cli.add_argument("--model-name", required=True)
    cli.add_argument("--experiment", required=True)
    cli.add_argument("--train-days", type=int, default=28)
    cli.add_argument("--eval-days", type=int, default=7)
    cli.add_argument("--margin", type=float, default=0.0)
    cli.add_argument("--reason", default="schedule")
    cli.add_argument(
        "--ground-truth", help="the generator's users CSV (synthetic data): the ceiling"
    )
    cli.add_argument(
        "--tuning-budget",
        type=float,
        default=300.0,
        help="seconds after which the ALS grid search stops (the first point always runs)",
    )
    cli.add_argument("--airflow-run-id", default="manual")
    cli.add_argument("--git-commit", default="unknown")
    args = parse_arguments(cli, argv, "train_recommender")
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("train_recommender"):
        # A fresh Unity Catalog has no schema for <catalog>.ml.<model>: registering would fail.
        ensure_model_schema(spark, args.model_name)
        config = RecommenderConfig(
            model_name=args.model_name,
            experiment=args.experiment,
            as_of=args.ds,
            train_days=args.train_days,
            eval_days=args.eval_days,
            margin=args.margin,
            airflow_run_id=args.airflow_run_id,
            git_commit=args.git_commit,
            reason=args.reason,
            ground_truth=args.ground_truth,
            tuning_budget_seconds=args.tuning_budget,
        )
        result = train_recommender(spark, config, args.catalog, args.silver_schema)
    tuning = result["tuning"]
    print(f"ALS {tuning.params}: {tuning.note}")
    for name, value in sorted(result["metrics"].items()):
        print(f"  {name}: {value:.4f}")
    decision = result["decision"]
    print(("PROMOTED: " if decision.promote else "KEPT CHAMPION: ") + decision.reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
