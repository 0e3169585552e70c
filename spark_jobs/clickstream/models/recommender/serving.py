"""The recommender's daily serving: the top products of every active user of a date.

**Recommendations for D.** The top :data:`K` products of every active user of D (the users of
the online feature table with ``feature_date = D``), excluding what the user bought in the
``exclude_days`` up to D, into ``gold.recommendations`` with the same lineage columns as the
scores. A user the model has never seen gets the popularity list of the 30 days up to D, and
its rows say so (``model_alias = 'popularity_fallback'``), so every active user is covered.
"""

from __future__ import annotations

from datetime import date, timedelta

from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession

from clickstream.core.contracts import RECOMMENDATIONS, SILVER_EVENTS, write_partition
from clickstream.core.schema import parse_ds
from clickstream.models import registry
from clickstream.models.propensity.serving import active_users, lineage
from clickstream.models.recommender.als import load_recommender, popularity_recommend, recommend
from clickstream.models.recommender.interactions import interactions, purchases_to_exclude

# Products per user: what serving writes, and the k of the training's precision@k and recall@k.
K = 10
FALLBACK_ALIAS = "popularity_fallback"


def recommend_for_date(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    model_name: str,
    airflow_run_id: str,
    exclude_days: int = 30,
    silver_schema: str = "silver",
    gold_schema: str = "gold",
) -> dict:
    ref = registry.champion(MlflowClient(), model_name)
    recommender = load_recommender(spark, ref.name, ref.version)
    day = date.fromisoformat(parse_ds(ds))
    events = spark.table(SILVER_EVENTS.name(catalog, silver_schema))
    active = active_users(spark, catalog, gold_schema, ds).select("user_id", "feature_date")
    exclude = purchases_to_exclude(events, day, exclude_days)
    known = recommend(recommender, active, K, exclude)
    unknown = active.join(recommender.users, on="user_id", how="left_anti")
    recent = interactions(events, day - timedelta(days=29), day)
    fallback = popularity_recommend(recent, unknown, K, exclude)

    def with_lineage(frame: DataFrame, alias: str) -> DataFrame:
        return frame.join(active, on="user_id", how="inner").select(
            "user_id",
            "product_id",
            "rank",
            "score",
            *lineage(ref, ds, airflow_run_id, alias=alias),
        )

    rows = with_lineage(known, registry.CHAMPION).unionByName(
        with_lineage(fallback, FALLBACK_ALIAS)
    )
    table = write_partition(
        spark, rows, RECOMMENDATIONS, catalog, f"score_date = DATE'{parse_ds(ds)}'", gold_schema
    )
    return {"table": table, "model": ref.uri}
