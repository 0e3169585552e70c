"""Detect feature drift of a period against the champion's training window, with Evidently.

    detect_drift.py --start-ds 2019-10-01 --end-ds 2019-10-31 --catalog spark_catalog \
        --model-name ecom_propensity --experiment /Shared/ecom/propensity \
        --output /Volumes/ecom/raw/reports/drift_detection/2019-10-01/feature_drift \
        [--silver-schema silver] [--gold-schema gold] [--monitoring-schema monitoring] \
        [--drift-share 0.046] [--min-rows 1000] [--max-rows 50000] [--seed 0] \
        [--airflow-run-id ...]

Current: the ``silver.user_features`` rows of the period (and its ``gold.propensity_scores``).
Reference: the rows of the training window named by the tags of ``models:/<model>@champion``'s
run (and the champion's scores on it, when there are any). Each side is sampled on Spark to at
most ``--max-rows`` rows (seeded, deterministic) before Evidently runs on pandas. Writes
``<output>.html`` (the Evidently report, one self-contained file), ``<output>.json`` (the
summary the drift sensor reads: ``status`` is ``drift``, ``no_drift`` or ``insufficient_data``
with its ``reason``; immature feature dates, whose 30-day windows start before the data, are
skipped on both sides and noted under ``maturity``)
and replaces the period's rows of ``<catalog>.<monitoring-schema>.drift_metrics``. Fails with
what to run when there is no champion. See ``clickstream/monitoring/drift.py``.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.monitoring.drift import DriftConfig, detect_drift


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--start-ds", required=True, help="first feature date of the period")
    cli.add_argument("--end-ds", required=True, help="last feature date of the period")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--model-name", required=True)
    cli.add_argument("--experiment", required=True, help="the training's MLflow experiment")
    cli.add_argument("--output", required=True, help="path without extension (a Volume path)")
    cli.add_argument("--silver-schema", default="silver")
    cli.add_argument("--gold-schema", default="gold")
    cli.add_argument("--monitoring-schema", default="monitoring")
    cli.add_argument(
        "--drift-share",
        type=float,
        default=DriftConfig.drift_share,
        help="share of drifted feature columns at or above which the period has drifted",
    )
    cli.add_argument("--min-rows", type=int, default=1000, help="per side, else insufficient")
    cli.add_argument("--max-rows", type=int, default=50_000, help="sample bound per side")
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--airflow-run-id", default="manual")
    args = parse_arguments(cli, argv, "detect_drift")
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("detect_drift"):
        config = DriftConfig(
            start=args.start_ds,
            end=args.end_ds,
            catalog=args.catalog,
            model_name=args.model_name,
            experiment=args.experiment,
            output=args.output,
            silver_schema=args.silver_schema,
            gold_schema=args.gold_schema,
            monitoring_schema=args.monitoring_schema,
            drift_share=args.drift_share,
            min_rows=args.min_rows,
            max_rows=args.max_rows,
            seed=args.seed,
            airflow_run_id=args.airflow_run_id,
        )
        summary = detect_drift(spark, config)
    share = summary["drift_share"]
    if share is None:
        figures = f"({summary['reason']})"
    else:
        figures = f"(drift share {share:.3f}, threshold {config.drift_share})"
    print(f"{config.start}..{config.end}: {summary['status'].upper()} {figures}")
    if summary["drifted_columns"]:
        print("drifted columns: " + ", ".join(summary["drifted_columns"]))
    scores = summary["scores"]
    if scores["compared"]:
        print(f"scores: {scores['stattest']} {scores['score']:.4f} drifted={scores['drifted']}")
    print(f"scores: {scores['note']}")
    last = summary["last_drift_retraining"]
    print(
        "last drift retraining: "
        + (f"as of {last['as_of']} (run {last['run_id']})" if last else "none")
    )
    print(f"report {summary['report']}, summary {config.output}.json, rows in {summary['table']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
