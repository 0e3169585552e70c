"""The ALS recommender's training, tracked in MLflow and decided in the registry.

**Training as of T.** The evaluation window is the ``eval_days`` ending at T; the model is
trained on the ``train_days`` of interactions before it (point in time: delivered by the end of
its window) and evaluated on what users carted or bought in the evaluation window, with
precision@10 and recall@10, next to the popularity baseline on the same users. The registry
rule is the propensity model's: ``challenger`` always, ``champion`` only when it beats the
current champion (recomputed on the same evaluation data) or, for the first model, popularity,
by the margin.

**What is registered.** The ALS model itself plus the dense id maps it needs, as Parquet
artifacts of the same run (:func:`~clickstream.models.recommender.als.log_recommender`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import mlflow
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession

from clickstream.core.contracts import SILVER_EVENTS, table_version
from clickstream.core.schema import parse_ds
from clickstream.models import registry
from clickstream.models.promotion import Decision, decide
from clickstream.models.propensity.data import TrainingDataError
from clickstream.models.recommender.als import (
    AlsRecommender,
    load_recommender,
    log_recommender,
    popularity_recommend,
    precision_recall_at_k,
    recommend,
    train_als,
)
from clickstream.models.recommender.interactions import (
    EVENT_WEIGHTS,
    interactions,
    purchases_to_exclude,
    relevant_items,
)
from clickstream.models.recommender.serving import K


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


@dataclass(frozen=True)
class Evaluation:
    """precision@k and recall@k of ALS, popularity and the current champion, decided."""

    als: dict[str, float | int]
    popularity: dict[str, float | int]
    champion: dict[str, float | int] | None
    decision: Decision


def _read_events(
    spark: SparkSession, catalog: str, silver_schema: str
) -> tuple[DataFrame, str, int]:
    """The silver events at their current Delta version: (events, table name, version)."""
    events_name = SILVER_EVENTS.name(catalog, silver_schema)
    events_version = table_version(spark, events_name)
    # Read the version recorded, so the lineage tag names exactly what was trained on.
    events = spark.sql(f"SELECT * FROM {events_name} VERSION AS OF {events_version}")
    return events, events_name, events_version


def _evaluate(
    spark: SparkSession,
    client: MlflowClient,
    config: RecommenderConfig,
    events: DataFrame,
    fitted: AlsRecommender,
    train_interactions: DataFrame,
    relevant: DataFrame,
) -> Evaluation:
    """ALS, popularity and the current champion on the same users and exclusions, decided."""
    users = relevant.select("user_id").distinct()
    exclude = purchases_to_exclude(events, config.train_window[1], config.exclude_days)
    als = precision_recall_at_k(recommend(fitted, users, K, exclude), relevant, K)
    popular = precision_recall_at_k(
        popularity_recommend(train_interactions, users, K, exclude), relevant, K
    )
    champion_version = registry.alias_version(client, config.model_name, registry.CHAMPION)
    champion = None
    if champion_version is not None:
        previous = load_recommender(spark, config.model_name, champion_version)
        champion = precision_recall_at_k(recommend(previous, users, K, exclude), relevant, K)
    decision = decide(
        als["precision_at_k"],
        champion_auc=champion["precision_at_k"] if champion else None,
        champion_version=champion_version,
        baseline_auc=popular["precision_at_k"],
        margin=config.margin,
        metric="precision@10",
        baseline="popularity baseline",
    )
    return Evaluation(als, popular, champion, decision)


def _run_tags(config: RecommenderConfig, events_name: str, events_version: int) -> dict[str, str]:
    """The lineage tags of the training run."""
    train_start, train_end = config.train_window
    eval_start, eval_end = config.eval_window
    return {
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


def _log_and_register(
    client: MlflowClient,
    config: RecommenderConfig,
    fitted: AlsRecommender,
    evaluation: Evaluation,
    tags: dict[str, str],
) -> tuple[dict[str, float | int], str]:
    """One MLflow run with the figures and the model, registered and decided; (metrics, version)."""
    als, popular, decision = evaluation.als, evaluation.popularity, evaluation.decision
    mlflow.set_experiment(config.experiment)
    with mlflow.start_run(run_name=f"recommender {config.as_of}", tags=tags) as run:
        mlflow.log_params(
            {
                "rank": fitted.model.rank,
                "k": K,
                "exclude_days": config.exclude_days,
                "event_weights": str(EVENT_WEIGHTS),
            }
        )
        metrics = {
            "precision_at_10": als["precision_at_k"],
            "recall_at_10": als["recall_at_k"],
            "popularity_precision_at_10": popular["precision_at_k"],
            "popularity_recall_at_10": popular["recall_at_k"],
            "evaluated_users": als["users"],
        }
        if evaluation.champion:
            metrics["champion_precision_at_10"] = evaluation.champion["precision_at_k"]
        mlflow.log_metrics(metrics)
        uri = log_recommender(fitted)
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
    return metrics, version


def train_recommender(
    spark: SparkSession, config: RecommenderConfig, catalog: str, silver_schema: str = "silver"
) -> dict:
    events, events_name, events_version = _read_events(spark, catalog, silver_schema)
    train_start, train_end = config.train_window
    eval_start, eval_end = config.eval_window
    train_interactions = interactions(events, train_start, train_end).persist()
    relevant = relevant_items(events, eval_start, eval_end).persist()
    try:
        if train_interactions.isEmpty() or relevant.isEmpty():
            raise TrainingDataError(
                f"no interactions in {train_start}..{train_end} or no carts/purchases in "
                f"{eval_start}..{eval_end}: run the offline_feature_table DAG for those dates"
            )
        fitted = train_als(train_interactions, num_blocks=2)
        client = MlflowClient()
        evaluation = _evaluate(spark, client, config, events, fitted, train_interactions, relevant)
        tags = _run_tags(config, events_name, events_version)
        metrics, version = _log_and_register(client, config, fitted, evaluation, tags)
    finally:
        train_interactions.unpersist()
        relevant.unpersist()
    return {"metrics": metrics, "decision": evaluation.decision, "version": version, "tags": tags}
