"""The ALS recommender's training, tracked in MLflow and decided in the registry.

**Training as of T.** The evaluation window is the ``eval_days`` ending at T; the model is
trained on the ``train_days`` of interactions before it (point in time: delivered by the end of
its window) and evaluated on what users carted or bought in the evaluation window, with
precision@10 and recall@10, next to the baselines on the same users and exclusions: global
popularity and category-aware popularity (:mod:`~clickstream.models.recommender.baselines`).
The registry rule is the propensity model's: ``challenger`` always, ``champion`` only when it
beats the current champion (recomputed on the same evaluation data) or, for the first model,
global popularity, by the margin.

**Tuning on an earlier window.** ALS's rank, regularisation and alpha are chosen from
:data:`TUNING_GRID` on the same train and evaluation lengths shifted ``eval_days`` earlier (the
evaluation window is never seen by the choice), then the chosen ones are refitted on the
training window. Without data in the earlier window nothing is tuned (:data:`DEFAULT_PARAMS`);
once ``tuning_budget_seconds`` have passed, the points not yet scored are skipped (the first,
the best measured one, always is). The grid's figures are logged to the run
(``tuning/grid.json``).

**The ceiling.** On generated data (``ground_truth`` names the generator's users CSV, with its
``generator.json`` beside it), the best ranking from the generator's true probabilities is
scored on the same rows (:mod:`~clickstream.models.recommender.ceiling`), and the run logs the
share of its gain over global popularity that ALS captures.

**What is registered.** The ALS model itself plus the dense id maps it needs, as Parquet
artifacts of the same run (:func:`~clickstream.models.recommender.als.log_recommender`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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
from clickstream.models.recommender.baselines import (
    category_popularity_recommend,
    product_categories,
)
from clickstream.models.recommender.ceiling import capture, ceiling_recommend, load_generator
from clickstream.models.recommender.interactions import (
    EVENT_WEIGHTS,
    interactions,
    purchases_to_exclude,
    relevant_items,
)
from clickstream.models.recommender.serving import K

# ALS's hyper-parameters when nothing was tuned, and the points tried on the earlier window,
# best first as measured on generated data (a tie keeps the earlier point). Small on purpose:
# each point is one fit, and the budget may stop the search early.
DEFAULT_PARAMS: dict[str, float] = {"rank": 32, "reg_param": 1.0, "alpha": 20.0}
TUNING_GRID: tuple[dict[str, float], ...] = (
    DEFAULT_PARAMS,
    {"rank": 32, "reg_param": 0.3, "alpha": 10.0},
    {"rank": 16, "reg_param": 1.0, "alpha": 20.0},
    {"rank": 16, "reg_param": 0.1, "alpha": 5.0},
)


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
    ground_truth: str | None = None
    tuning_grid: tuple[dict[str, float], ...] = TUNING_GRID
    tuning_budget_seconds: float = 300.0

    @property
    def eval_window(self) -> tuple[date, date]:
        end = date.fromisoformat(parse_ds(self.as_of))
        return end - timedelta(days=self.eval_days - 1), end

    @property
    def train_window(self) -> tuple[date, date]:
        end = self.eval_window[0] - timedelta(days=1)
        return end - timedelta(days=self.train_days - 1), end

    @property
    def tuning_windows(self) -> tuple[tuple[date, date], tuple[date, date]]:
        """(train, evaluation) windows of the tuning: both shifted ``eval_days`` earlier."""
        shift = timedelta(days=self.eval_days)
        (train_start, train_end), (eval_start, eval_end) = self.train_window, self.eval_window
        return (train_start - shift, train_end - shift), (eval_start - shift, eval_end - shift)


@dataclass(frozen=True)
class Tuning:
    """The ALS parameters chosen on the earlier window and every grid point's figure."""

    params: dict[str, float]
    grid: list[dict] = field(default_factory=list)  # params + precision_at_10, in grid order
    note: str = ""


@dataclass(frozen=True)
class Evaluation:
    """precision@k and recall@k of ALS, the baselines, the ceiling and the champion, decided."""

    als: dict[str, float | int]
    popularity: dict[str, float | int]
    champion: dict[str, float | int] | None
    decision: Decision
    category_popularity: dict[str, float | int] | None = None
    ceiling: dict[str, float | int] | None = None


def _read_events(
    spark: SparkSession, catalog: str, silver_schema: str
) -> tuple[DataFrame, str, int]:
    """The silver events at their current Delta version: (events, table name, version)."""
    events_name = SILVER_EVENTS.name(catalog, silver_schema)
    events_version = table_version(spark, events_name)
    # Read the version recorded, so the lineage tag names exactly what was trained on.
    events = spark.sql(f"SELECT * FROM {events_name} VERSION AS OF {events_version}")
    return events, events_name, events_version


def _precision_of(
    params: dict[str, float],
    train: DataFrame,
    users: DataFrame,
    exclude: DataFrame,
    relevant: DataFrame,
) -> float:
    fitted = train_als(train, num_blocks=2, **params)
    return precision_recall_at_k(recommend(fitted, users, K, exclude), relevant, K)[
        "precision_at_k"
    ]


def tune(events: DataFrame, config: RecommenderConfig) -> Tuning:
    """The grid point with the best precision@10 on the earlier window (see the module doc)."""
    (train_start, train_end), (eval_start, eval_end) = config.tuning_windows
    train = interactions(events, train_start, train_end).persist()
    relevant = relevant_items(events, eval_start, eval_end).persist()
    try:
        if train.isEmpty() or relevant.isEmpty():
            return Tuning(
                dict(DEFAULT_PARAMS),
                note=f"not tuned: no interactions in {train_start}..{train_end} or no carts/"
                f"purchases in {eval_start}..{eval_end}",
            )
        users = relevant.select("user_id").distinct()
        exclude = purchases_to_exclude(events, train_end, config.exclude_days)
        started, grid = time.monotonic(), []
        for params in config.tuning_grid:
            precision = _precision_of(params, train, users, exclude, relevant)
            grid.append({**params, "precision_at_10": precision})
            if time.monotonic() - started > config.tuning_budget_seconds:
                break  # the first point is always scored: it is the best measured one
    finally:
        train.unpersist()
        relevant.unpersist()
    best = max(grid, key=lambda point: point["precision_at_10"])  # the first of equals
    note = f"tuned on {train_start}..{eval_end}: {len(grid)} of {len(config.tuning_grid)} points"
    return Tuning({key: best[key] for key in DEFAULT_PARAMS}, grid, note)


def _ceiling(
    spark: SparkSession,
    config: RecommenderConfig,
    users: DataFrame,
    exclude: DataFrame,
    relevant: DataFrame,
) -> dict[str, float | int] | None:
    """The generator's ceiling on the evaluation rows, when its ground truth is available."""
    if not config.ground_truth:
        return None
    generator = load_generator(config.ground_truth)
    if generator is None:
        print(f"no generator parameters beside {config.ground_truth}: ceiling skipped")
        return None
    best = ceiling_recommend(spark, generator, users, K, config.eval_window, exclude)
    return precision_recall_at_k(best, relevant, K)


def _evaluate(
    spark: SparkSession,
    client: MlflowClient,
    config: RecommenderConfig,
    events: DataFrame,
    fitted: AlsRecommender,
    train_interactions: DataFrame,
    relevant: DataFrame,
) -> Evaluation:
    """ALS, the baselines, the ceiling and the champion on the same users and exclusions."""
    users = relevant.select("user_id").distinct()
    exclude = purchases_to_exclude(events, config.train_window[1], config.exclude_days)
    als = precision_recall_at_k(recommend(fitted, users, K, exclude), relevant, K)
    popular = precision_recall_at_k(
        popularity_recommend(train_interactions, users, K, exclude), relevant, K
    )
    categories = product_categories(events, *config.train_window)
    by_category = precision_recall_at_k(
        category_popularity_recommend(train_interactions, categories, users, K, exclude),
        relevant,
        K,
    )
    ceiling = _ceiling(spark, config, users, exclude, relevant)
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
    return Evaluation(als, popular, champion, decision, by_category, ceiling)


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
        **registry.delta_version_tags({events_name: events_version}),
    }


def _log_and_register(
    client: MlflowClient,
    config: RecommenderConfig,
    fitted: AlsRecommender,
    evaluation: Evaluation,
    tuning: Tuning,
    tags: dict[str, str],
) -> tuple[dict[str, float | int], str]:
    """One MLflow run with the figures and the model, registered and decided; (metrics, version)."""
    als, popular, decision = evaluation.als, evaluation.popularity, evaluation.decision
    mlflow.set_experiment(config.experiment)
    with mlflow.start_run(run_name=f"recommender {config.as_of}", tags=tags) as run:
        mlflow.log_params(
            {
                "rank": fitted.model.rank,
                "reg_param": tuning.params["reg_param"],
                "alpha": tuning.params["alpha"],
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
        if evaluation.category_popularity:
            by_category = evaluation.category_popularity
            metrics["category_popularity_precision_at_10"] = by_category["precision_at_k"]
            metrics["category_popularity_recall_at_10"] = by_category["recall_at_k"]
        if evaluation.ceiling:
            ceiling = evaluation.ceiling["precision_at_k"]
            metrics["ceiling_precision_at_10"] = ceiling
            metrics["ceiling_recall_at_10"] = evaluation.ceiling["recall_at_k"]
            metrics["ceiling_capture"] = capture(
                als["precision_at_k"], popular["precision_at_k"], ceiling
            )
        if evaluation.champion:
            metrics["champion_precision_at_10"] = evaluation.champion["precision_at_k"]
        if tuning.grid:
            metrics["tuning_precision_at_10"] = max(p["precision_at_10"] for p in tuning.grid)
        mlflow.log_metrics(metrics)
        mlflow.log_dict({"note": tuning.note, "grid": tuning.grid}, "tuning/grid.json")
        mlflow.set_tag("tuning", tuning.note or "tuned")
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
        tuning = tune(events, config)
        print(f"ALS parameters {tuning.params} ({tuning.note})")
        fitted = train_als(train_interactions, num_blocks=2, **tuning.params)
        client = MlflowClient()
        evaluation = _evaluate(spark, client, config, events, fitted, train_interactions, relevant)
        tags = _run_tags(config, events_name, events_version)
        metrics, version = _log_and_register(client, config, fitted, evaluation, tuning, tags)
    finally:
        train_interactions.unpersist()
        relevant.unpersist()
    return {
        "metrics": metrics,
        "decision": evaluation.decision,
        "version": version,
        "tags": tags,
        "tuning": tuning,
    }
