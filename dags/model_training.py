"""
### Model training (daily; also triggered by drift)

Trains the purchase-propensity model on the offline feature table and decides, through the
MLflow registry's aliases, whether it replaces the champion.

| | |
|---|---|
| **Waits for** | `offline_feature_table` run of the as-of date (success) |
| **Input** | `silver.user_features`, `silver.user_labels` (read at recorded Delta versions) |
| **Output** | MLflow: a parent run with one child per candidate (logistic regression, random forest); registry: a new version of the model with alias `challenger`, and `champion` when it wins |
| **Runs on** | Databricks (`spark_jobs/train_models.py`, `spark_jobs/train_recommender.py`); locally on the local workspace, MLflow server on SQLite |
| **Owner** | ml-platform |

**What it decides.** `train_propensity_model` trains the candidates on a time split of the
feature table as of date T (training windows before a validation window, no label window
reaching into it), picks the best on the validation window's earlier dates (selection) and
registers it as `challenger`; `champion` moves to it only when, on the later dates
(evaluation), the low end of the 95% paired per-user bootstrap interval of its ROC AUC gain
over the current champion is above `promotion_margin` and its calibration error is at most
`promotion_calibration_tolerance` worse (the first model is compared with a recency baseline). `train_recommender` does the same for ALS against a
popularity baseline on precision@10, by `recommender_promotion_margin`. The decision, its reason
and the training windows (drift detection's reference) are tags of the MLflow run and of the
model version. The details: `docs/models.md`.

**Trigger by hand or from drift.** Run conf (every key optional, shown in the trigger form):
`reason` (`schedule`, `drift`, `performance` or `manual`; default `schedule`), `as_of` (the date to train as
of; default: the run's logical date; the run waits for the offline features of that date) and
`drift_summary` (the drift or performance summary that caused the run). `drift_detection` triggers with
`{"reason": "drift", "as_of": <month end>, "drift_summary": <its summary>}`;
`model_performance` with `{"reason": "performance", "as_of": <its ds>, "drift_summary":
<its performance summary>}` when the served scores decayed.

**What a failure means.** `train_propensity_model` fails with "the training window ... starts
before ..., the first mature feature date" when the data begins less than 29 days before the
training window (load more history or train as of a later date), with "no labelled feature
rows in the training window" when the feature table has too little history for the windows
(run the offline DAG for earlier dates, or shorten the windows), or with an MLflow error when the
tracking server is unreachable. The champion is untouched by a failed run. A run that *kept*
the champion is no failure: the challenger did not win by the margin (the figures are tags of
the MLflow run). A bad champion serving: roll it back (`docs/runbook.md`, *Roll back a model*).
What every DAG's failures have in common: `docs/runbook.md` in the repository.

**Rerun one date.** Clear `train_propensity_model` for the date: it registers a new version and
applies the rule again (the registry keeps every version).

**Backfill a range.** Rarely useful: each run trains as of its own date and the promotion rule
compares it with the champion of that moment, so a backfill walks the champion forward day by
day. To retrain as of one past date, trigger with conf `{"as_of": "<date>", "reason":
"manual"}` instead. A backfill of a range (`docs/runbook.md`, *Backfill a range*) runs the
dates one at a time (`max_active_runs=1`), each after the offline features of its date.
"""

from __future__ import annotations

from airflow.sdk import Param

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import daily_dag, databricks_job, wait_for_dag

ENV = current_environment()
AS_OF = "{{ params.as_of or ds }}"
# `none` rather than an empty string: every job parameter is a non-empty argument.
DRIFT_SUMMARY = "{{ params.drift_summary or 'none' }}"

training_parameters = {
    "--ds": AS_OF,
    "--logical-date": "{{ ds }}",
    "--catalog": ENV.catalog,
    "--model-name": ENV.model_name,
    "--experiment": ENV.mlflow_experiment,
    "--train-days": str(ENV.train_days),
    "--validation-days": str(ENV.validation_days),
    "--label-horizon-days": str(ENV.label_horizon_days),
    "--max-train-rows": str(ENV.max_train_rows),
    "--margin": str(ENV.promotion_margin),
    "--calibration-tolerance": str(ENV.promotion_calibration_tolerance),
    "--reason": "{{ params.reason }}",
    "--drift-summary": DRIFT_SUMMARY,
    "--airflow-run-id": "{{ run_id }}",
    "--git-commit": (ENV.git_source or {}).get("git_commit")
    or (ENV.git_source or {}).get("git_tag")
    or "local",
}
if ENV.ground_truth_path:
    training_parameters["--ground-truth"] = ENV.ground_truth_path

with daily_dag(
    "model_training",
    doc_md=__doc__,
    tags=["ml", "training", "mlflow", "daily"],
    max_active_runs=1,
    params={
        "reason": Param(
            "schedule", type="string", enum=["schedule", "drift", "performance", "manual"]
        ),
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="train as of this date (default: the logical date)",
        ),
        "drift_summary": Param(
            None,
            type=["null", "string"],
            description="the monitoring summary JSON that triggered this run (set by "
            "drift_detection or model_performance)",
        ),
    },
):
    upstream = wait_for_dag("offline_feature_table", follow_as_of=True)
    train = databricks_job(
        task_id="train_propensity_model",
        script="train_models.py",
        parameters=training_parameters,
    )
    recommender = databricks_job(
        task_id="train_recommender",
        script="train_recommender.py",
        parameters={
            "--ds": AS_OF,
            "--catalog": ENV.catalog,
            "--model-name": ENV.recommender_name,
            "--experiment": ENV.recommender_experiment,
            "--train-days": str(ENV.recommender_train_days),
            "--eval-days": str(ENV.recommender_eval_days),
            "--margin": str(ENV.recommender_promotion_margin),
            "--reason": "{{ params.reason }}",
            "--airflow-run-id": "{{ run_id }}",
            "--git-commit": training_parameters["--git-commit"],
            # Synthetic data only: the generator's true ranking, the recommender's ceiling.
            **({"--ground-truth": ENV.ground_truth_path} if ENV.ground_truth_path else {}),
        },
    )
    upstream >> [train, recommender]
