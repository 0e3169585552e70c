"""The ALS recommender's training (MLflow, registry aliases) and its daily recommendations.

**Training as of T.** The evaluation window is the ``eval_days`` ending at T; the model is
trained on the ``train_days`` of interactions before it (point in time: delivered by the end of
its window) and evaluated on what users carted or bought in the evaluation window, with
precision@10 and recall@10, next to the popularity baseline on the same users. The registry
rule is the propensity model's: ``challenger`` always, ``champion`` only when it beats the
current champion (recomputed on the same evaluation data) or, for the first model, popularity,
by the margin.

**What is registered.** The ALS model itself (``mlflow.spark``, which moves it through DFS on a
cluster so executors can read it) plus the dense id maps it needs, as Parquet artifacts of the
same run.

**Recommendations for D.** The top 10 products of every active user of D (the users of the
online feature table with ``feature_date = D``), excluding what the user bought in the
``exclude_days`` up to D, into ``gold.recommendations`` with the same lineage columns as the
scores. A user the model has never seen gets the popularity list of the 30 days up to D, and
its rows say so (``model_alias = 'popularity_fallback'``), so every active user is covered.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import mlflow
import mlflow.spark
import pandas as pd
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession

from clickstream.core.contracts import (
    RECOMMENDATIONS,
    SILVER_EVENTS,
    table_version,
    write_partition,
)
from clickstream.core.schema import parse_ds
from clickstream.models import registry
from clickstream.models.propensity import model as training
from clickstream.models.propensity import serving
from clickstream.models.recommender import als as recommend

K = 10
FALLBACK_ALIAS = "popularity_fallback"


@dataclass(frozen=True)
class RecommenderConfig:
    model_name: str
    experiment: str
    as_of: str
    train_days: int = 28
    eval_days: int = 7
    margin: float = 0.0
    exclude_days: int = 30
    airflow_run_id: str = "manual"
    git_commit: str = "unknown"
    reason: str = "schedule"

    @property
    def eval_window(self) -> tuple[date, date]:
        end = date.fromisoformat(parse_ds(self.as_of))
        return end - timedelta(days=self.eval_days - 1), end

    @property
    def train_window(self) -> tuple[date, date]:
        end = self.eval_window[0] - timedelta(days=1)
        return end - timedelta(days=self.train_days - 1), end


def _load(spark: SparkSession, name: str, version: str) -> recommend.AlsRecommender:
    """The registered ALS model and the id maps logged next to it."""
    client = MlflowClient()
    run_id = client.get_model_version(name, version).run_id
    model = mlflow.spark.load_model(f"models:/{name}/{version}").stages[0]
    maps = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="id_maps"))
    # Read on the driver: a driver-local download is not visible to a cluster's executors.
    users = spark.createDataFrame(pd.read_parquet(maps / "users" / "users.parquet"))
    items = spark.createDataFrame(pd.read_parquet(maps / "items" / "items.parquet"))
    return recommend.AlsRecommender(model=model, users=users, items=items)


def _log(spark: SparkSession, recommender: recommend.AlsRecommender) -> str:
    """Log the model and its id maps to the active run; returns the model URI."""
    info = mlflow.spark.log_model(recommender.model, artifact_path="als")
    with tempfile.TemporaryDirectory(prefix="id-maps-") as tmp:
        for name, frame in (("users", recommender.users), ("items", recommender.items)):
            frame.toPandas().to_parquet(Path(tmp) / f"{name}.parquet", index=False)
        mlflow.log_artifact(str(Path(tmp) / "users.parquet"), "id_maps/users")
        mlflow.log_artifact(str(Path(tmp) / "items.parquet"), "id_maps/items")
    return info.model_uri


def train_recommender(
    spark: SparkSession, config: RecommenderConfig, catalog: str, silver_schema: str = "silver"
) -> dict:
    events_name = SILVER_EVENTS.name(catalog, silver_schema)
    events_version = table_version(spark, events_name)
    # Read the version recorded, so the lineage tag names exactly what was trained on.
    events = spark.sql(f"SELECT * FROM {events_name} VERSION AS OF {events_version}")
    train_start, train_end = config.train_window
    eval_start, eval_end = config.eval_window
    interactions = recommend.interactions(events, train_start, train_end).persist()
    relevant = recommend.relevant_items(events, eval_start, eval_end).persist()
    try:
        if interactions.isEmpty() or relevant.isEmpty():
            raise training.TrainingDataError(
                f"no interactions in {train_start}..{train_end} or no carts/purchases in "
                f"{eval_start}..{eval_end}: run the offline_feature_table DAG for those dates"
            )
        users = relevant.select("user_id").distinct()
        exclude = recommend.purchases_to_exclude(events, train_end, config.exclude_days)
        fitted = recommend.train_als(interactions, num_blocks=2)
        als = recommend.precision_recall_at_k(
            recommend.recommend(fitted, users, K, exclude), relevant, K
        )
        popular = recommend.precision_recall_at_k(
            recommend.popularity_recommend(interactions, users, K, exclude), relevant, K
        )
        client = MlflowClient()
        champion_version = registry.alias_version(client, config.model_name, registry.CHAMPION)
        champion = None
        if champion_version is not None:
            previous = _load(spark, config.model_name, champion_version)
            champion = recommend.precision_recall_at_k(
                recommend.recommend(previous, users, K, exclude), relevant, K
            )
        decision = training.decide(
            als["precision_at_k"],
            champion_auc=champion["precision_at_k"] if champion else None,
            champion_version=champion_version,
            baseline_auc=popular["precision_at_k"],
            margin=config.margin,
            metric="precision@10",
            baseline="popularity baseline",
        )
        tags = {
            "logical_date": parse_ds(config.as_of),
            "airflow_run_id": config.airflow_run_id,
            "git_commit": config.git_commit,
            "reason": config.reason,
            "model_name": config.model_name,
            "train_window_start": train_start.isoformat(),
            "train_window_end": train_end.isoformat(),
            "eval_window_start": eval_start.isoformat(),
            "eval_window_end": eval_end.isoformat(),
            f"delta_version.{events_name}": str(events_version),
        }
        mlflow.set_experiment(config.experiment)
        with mlflow.start_run(run_name=f"recommender {config.as_of}", tags=tags) as run:
            model = fitted.model
            mlflow.log_params(
                {
                    "rank": model.rank,
                    "k": K,
                    "exclude_days": config.exclude_days,
                    "event_weights": str(recommend.EVENT_WEIGHTS),
                }
            )
            metrics = {
                "precision_at_10": als["precision_at_k"],
                "recall_at_10": als["recall_at_k"],
                "popularity_precision_at_10": popular["precision_at_k"],
                "popularity_recall_at_10": popular["recall_at_k"],
                "evaluated_users": als["users"],
            }
            if champion:
                metrics["champion_precision_at_10"] = champion["precision_at_k"]
            mlflow.log_metrics(metrics)
            uri = _log(spark, fitted)
            version = registry.register_challenger(
                client, config.model_name, uri, run.info.run_id, {"as_of": config.as_of}
            )
            registry.record_decision(
                client,
                config.model_name,
                version,
                promote=decision.promote,
                reason=decision.reason,
            )
            mlflow.set_tags(
                {
                    "decision": "promoted" if decision.promote else "kept",
                    "decision_reason": decision.reason,
                    "challenger_version": version,
                }
            )
    finally:
        interactions.unpersist()
        relevant.unpersist()
    return {"metrics": metrics, "decision": decision, "version": version, "tags": tags}


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
    recommender = _load(spark, ref.name, ref.version)
    day = date.fromisoformat(parse_ds(ds))
    events = spark.table(SILVER_EVENTS.name(catalog, silver_schema))
    active = serving.active_users(spark, catalog, gold_schema, ds).select("user_id", "feature_date")
    exclude = recommend.purchases_to_exclude(events, day, exclude_days)
    known = recommend.recommend(recommender, active, K, exclude)
    unknown = active.join(recommender.users, on="user_id", how="left_anti")
    recent = recommend.interactions(events, day - timedelta(days=29), day)
    fallback = recommend.popularity_recommend(recent, unknown, K, exclude)

    def with_lineage(frame: DataFrame, alias: str) -> DataFrame:
        return frame.join(active, on="user_id", how="inner").select(
            "user_id",
            "product_id",
            "rank",
            "score",
            *serving.lineage(ref, ds, airflow_run_id, alias=alias),
        )

    rows = with_lineage(known, registry.CHAMPION).unionByName(
        with_lineage(fallback, FALLBACK_ALIAS)
    )
    table = write_partition(
        spark, rows, RECOMMENDATIONS, catalog, f"score_date = DATE'{parse_ds(ds)}'", gold_schema
    )
    return {"table": table, "model": ref.uri}
