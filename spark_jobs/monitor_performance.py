"""Measure how the served propensity scores performed once their labels closed.

    monitor_performance.py --ds 2019-11-08 --catalog spark_catalog \
        --model-name ecom_propensity --experiment /Shared/ecom/propensity \
        --output /Volumes/ecom/raw/reports/model_performance/2019-11-08/model_performance \
        [--start-ds 2019-10-01 --end-ds 2019-11-01] [--horizon-days 7] \
        [--max-ece 0.08] [--max-auc-drop 0.05] [--min-rows 1000] \
        [--silver-schema silver] [--gold-schema gold] [--monitoring-schema monitoring] \
        [--airflow-run-id ...]

For the logical date ``--ds`` = T, the score date whose label horizon has just closed,
S = T - horizon (or every score date of ``--start-ds``..``--end-ds``, a backfill; each must
have S + horizon <= T): the scores of ``gold.propensity_scores`` joined with the labels of
``silver.user_labels``. Replaces the dates' rows of
``<catalog>.<monitoring-schema>.model_performance`` (ROC AUC, PR AUC, ECE, base rate, mean
score, lift at the top decile, counts, model version), writes ``<output>.html`` (a
self-contained page) and ``<output>.json`` (the summary the performance sensor reads: status
``healthy``, ``decayed``, ``insufficient_data`` or ``no_scores`` for the last score date). Scores
without a label are counted and reported. See ``clickstream/monitoring/performance.py``.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.monitoring.performance import PerformanceConfig, monitor_performance


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True, help="the logical date T of the run")
    cli.add_argument("--start-ds", help="first score date (default: T - horizon)")
    cli.add_argument("--end-ds", help="last score date (default: T - horizon)")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--model-name", required=True)
    cli.add_argument("--experiment", required=True, help="the training's MLflow experiment")
    cli.add_argument("--output", required=True, help="path without extension (a Volume path)")
    cli.add_argument("--horizon-days", type=int, default=PerformanceConfig.horizon_days)
    cli.add_argument(
        "--max-ece",
        type=float,
        default=PerformanceConfig.max_ece,
        help="a score date whose expected calibration error is above this has decayed",
    )
    cli.add_argument(
        "--max-auc-drop",
        type=float,
        default=PerformanceConfig.max_auc_drop,
        help="...or whose ROC AUC is below the version's validation ROC AUC by more than this",
    )
    cli.add_argument(
        "--min-rows",
        type=int,
        default=PerformanceConfig.min_rows,
        help="labelled rows a date needs to be judged, else insufficient_data",
    )
    cli.add_argument("--silver-schema", default="silver")
    cli.add_argument("--gold-schema", default="gold")
    cli.add_argument("--monitoring-schema", default="monitoring")
    cli.add_argument("--airflow-run-id", default="manual")
    args = parse_arguments(cli, argv, "monitor_performance")
    with expected_failures("monitor_performance"):
        if (args.start_ds is None) != (args.end_ds is None):
            raise ValueError("--start-ds and --end-ds go together (a range of score dates)")
        closed = (date.fromisoformat(args.ds) - timedelta(days=args.horizon_days)).isoformat()
        config = PerformanceConfig(
            logical_date=args.ds,
            start=args.start_ds or closed,
            end=args.end_ds or closed,
            catalog=args.catalog,
            model_name=args.model_name,
            experiment=args.experiment,
            output=args.output,
            horizon_days=args.horizon_days,
            silver_schema=args.silver_schema,
            gold_schema=args.gold_schema,
            monitoring_schema=args.monitoring_schema,
            max_ece=args.max_ece,
            max_auc_drop=args.max_auc_drop,
            min_rows=args.min_rows,
            airflow_run_id=args.airflow_run_id,
        )
        spark = SparkSession.builder.getOrCreate()
        summary = monitor_performance(spark, config)
    for row in summary["rows"]:
        figures = ", ".join(
            f"{k} {row[k]:.4f}" if isinstance(row[k], float) else f"{k} {row[k]}"
            for k in ("roc_auc", "pr_auc", "ece", "base_rate", "lift_top_decile")
        )
        print(
            f"{row['score_date']} v{row['model_version']}: {row['status'].upper()} "
            f"({row['labelled_rows']} of {row['rows']} scores labelled, "
            f"{row['unlabelled_rows']} without a label; {figures})"
        )
    for day in summary["dates_without_scores"]:
        print(f"{day}: no scores of {config.model_name}")
    reasons = "; ".join(summary["decay_reasons"]) or "none"
    print(
        f"decision date {summary['decision_date']}: {summary['status'].upper()} "
        f"(decay reasons: {reasons}; champion v{summary['champion_version']})"
    )
    print(f"report {summary['report']}, summary {config.output}.json, rows in {summary['table']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
