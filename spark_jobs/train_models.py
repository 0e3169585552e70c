"""Train the purchase-propensity model and decide whether it becomes the champion.

    train_models.py --ds 2019-10-31 [--logical-date 2019-11-02] --catalog spark_catalog \
        --model-name ecom_propensity --experiment /Shared/ecom/propensity \
        [--train-days 14] [--validation-days 7] \
        [--label-horizon-days 7] [--max-train-rows 200000] [--margin 0.002] \
        [--calibration-tolerance 0.02] [--bootstrap-replicates 400] \
        [--reason schedule|drift|manual] [--drift-summary PATH] [--airflow-run-id ...] \
        [--git-commit ...] \
        [--ground-truth /Volumes/ecom/raw/landing/ground_truth/users.csv]

Reads ``silver.user_features`` and ``silver.user_labels`` (at the Delta versions it records),
splits by time as of ``--ds`` (see ``clickstream/models/propensity/data.py``), trains the logistic
regression and random forest pipelines, picks the best on the selection split, logs
everything to MLflow, registers it as ``challenger`` and moves ``champion`` only when, on the
later evaluation split, the low end of the paired per-user bootstrap interval of its ROC AUC
gain is above ``--margin`` and its calibration error is at most ``--calibration-tolerance``
worse (``docs/models.md``). The winner is refitted on every labelled date up to the cut-off
before it is registered (measured better; ``--no-refit`` registers the train-window fit). Every
window must be mature: a feature date needs 29 days of data
before it, else the job stops before fitting. MLflow is the one the environment names
(``MLFLOW_TRACKING_URI``; Databricks sets it on its clusters).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from clickstream.core.catalog import ensure_model_schema
from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.models.propensity.data import Windows
from clickstream.models.propensity.training import TrainingConfig, train_propensity


def _git_commit(given: str) -> str:
    """The commit given by the DAG; locally, the checkout's HEAD when the DAG passes none."""
    if given and given != "local":
        return given
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def arguments(argv: list[str] | None = None):
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True, help="as-of date (the logical date), YYYY-MM-DD")
    cli.add_argument(
        "--logical-date", help="the Airflow run's logical date when --ds is another (default: --ds)"
    )
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--silver-schema", default="silver")
    cli.add_argument("--model-name", required=True)
    cli.add_argument("--experiment", required=True)
    cli.add_argument("--train-days", type=int, default=14)
    cli.add_argument("--validation-days", type=int, default=7)
    cli.add_argument("--label-horizon-days", type=int, default=7)
    cli.add_argument("--max-train-rows", type=int, default=200_000)
    cli.add_argument("--margin", type=float, default=0.002)
    cli.add_argument(
        "--calibration-tolerance",
        type=float,
        default=0.02,
        help="how much worse the challenger's calibration error may be than the reference's",
    )
    cli.add_argument("--bootstrap-replicates", type=int, default=400)
    cli.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="register the winner as fitted on the training window (default: refit it on every "
        "labelled date up to the cut-off first)",
    )
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--reason", default="schedule")
    cli.add_argument(
        "--drift-summary", default="none", help="drift summary JSON that triggered the run"
    )
    cli.add_argument("--airflow-run-id", default="manual")
    cli.add_argument("--git-commit", default="local")
    cli.add_argument(
        "--ground-truth",
        help="the synthetic generator's users.csv (its days.csv lies beside it): oracle figures",
    )
    return parse_arguments(cli, argv, "train_models")


def training_config(args) -> TrainingConfig:
    """The training's configuration from the parsed arguments (windows checked here)."""
    with expected_failures("train_models"):
        return TrainingConfig(
            model_name=args.model_name,
            experiment=args.experiment,
            windows=Windows.build(
                args.ds, args.label_horizon_days, args.train_days, args.validation_days
            ),
            max_rows=args.max_train_rows,
            margin=args.margin,
            calibration_tolerance=args.calibration_tolerance,
            bootstrap_replicates=args.bootstrap_replicates,
            refit=args.refit,
            seed=args.seed,
            reason=args.reason,
            drift_summary=args.drift_summary,
            logical_date=args.logical_date or args.ds,
            airflow_run_id=args.airflow_run_id,
            git_commit=_git_commit(args.git_commit),
            ground_truth=args.ground_truth,
        )


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    config = training_config(args)
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("train_models"):
        # A fresh Unity Catalog has no schema for <catalog>.ml.<model>: registering would fail.
        ensure_model_schema(spark, args.model_name)
        result = train_propensity(spark, config, args.catalog, args.silver_schema)
    decision = result["decision"]
    print(f"best candidate: {result['best']} -> {args.model_name} v{result['version']}")
    summary = result["summary"]
    for name, value in sorted(summary.items()):
        print(f"  {name}: {value:.4f}")
    for name in ("challenger", "champion", "baseline", "oracle", "delta"):
        key = f"{name}_roc_auc"
        if f"{key}_ci_low" in summary:
            print(
                f"  {name} ROC AUC {summary[key]:.4f}, 95% per-user bootstrap interval "
                f"[{summary[f'{key}_ci_low']:.4f}, {summary[f'{key}_ci_high']:.4f}]"
            )
    if "lift_capture_ci_low" in summary:
        print(
            f"  lift capture {summary['lift_capture']:.3f}, 95% interval "
            f"[{summary['lift_capture_ci_low']:.3f}, {summary['lift_capture_ci_high']:.3f}]"
        )
    print(("PROMOTED: " if decision.promote else "KEPT CHAMPION: ") + decision.reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
