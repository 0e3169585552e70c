"""
### Model serving (daily)

Scores every active user of the logical date with the champion propensity model, in batch on
Spark, into `gold.propensity_scores`, and writes each user's top 10 products from the champion
ALS recommender into `gold.recommendations` (users ALS has never seen get the popularity list,
flagged `model_alias = popularity_fallback`).

| | |
|---|---|
| **Waits for** | `online_feature_table` run of the same logical date (success) |
| **Input** | `gold.user_features_online` (users with `feature_date = ds`), `models:/<model>@champion` |
| **Output** | `gold.propensity_scores` (partition `score_date = ds`): user id, score, model name, version, alias, feature date, logical date, Airflow run id; `gold.recommendations` (same partition and lineage): top 10 products per active user with rank and score, excluding products bought in the last 30 days |
| **Runs on** | Databricks (`spark_jobs/score_users.py`, `spark_jobs/recommend_products.py`); locally on the local workspace |
| **Owner** | ml-platform |

The alias is resolved once per run to a version, and every row names it: a rollback or a
promotion while the run is in flight cannot mix versions in one date.

**What a failure means.** "has no version with the alias 'champion'": no model was promoted
yet; run `model_training` (serving never trains). "does not exist: run the
online_feature_table DAG": the online table is missing. What every DAG's failures have in
common: `docs/runbook.md` in the repository.

**Rerun one date.** Clear `score_users` (or `recommend_products`) for the date: the
`score_date` partition is replaced, scored by the champion of that moment (its version is in
the rows). After a model rollback, this is how the dates the bad model served are re-scored
(`docs/runbook.md`, *Roll back a model*).

**Backfill a range.** As in `docs/runbook.md` (*Backfill a range*), with one caveat: a backfill
scores past dates with today's champion.
"""

from __future__ import annotations

from ecom_airflow.config import current_environment
from ecom_airflow.tasks import daily_dag, databricks_job, wait_for_dag

ENV = current_environment()

with daily_dag(
    "model_serving",
    doc_md=__doc__,
    tags=["ml", "serving", "gold", "daily"],
):
    upstream = wait_for_dag("online_feature_table")
    score = databricks_job(
        task_id="score_users",
        script="score_users.py",
        parameters={
            "--ds": "{{ ds }}",
            "--catalog": ENV.catalog,
            "--model-name": ENV.model_name,
            "--airflow-run-id": "{{ run_id }}",
        },
    )
    recommendations = databricks_job(
        task_id="recommend_products",
        script="recommend_products.py",
        parameters={
            "--ds": "{{ ds }}",
            "--catalog": ENV.catalog,
            "--model-name": ENV.recommender_name,
            "--airflow-run-id": "{{ run_id }}",
            "--exclude-days": str(ENV.exclude_purchased_days),
        },
    )
    upstream >> [score, recommendations]
