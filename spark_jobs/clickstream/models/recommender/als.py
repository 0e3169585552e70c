"""The ALS recommender: a model of implicit feedback, a popularity baseline, and metrics.

The input is :func:`~clickstream.models.recommender.interactions.interactions`, one implicit
feedback ``strength`` per (user, product).

**Dense ids.** Spark's ALS only takes ``int`` ids, and ``user_id``/``product_id`` are
``bigint`` that may not fit (casting would silently wrap around and merge unrelated ids). Every
distinct id therefore gets a dense index ``0..n-1`` in id order (deterministic, so a retrain on
the same data gives the same indices); the mappings travel with the model in
:class:`AlsRecommender` and every output is mapped back to the original ids.
:func:`log_recommender` logs both mappings next to the model (``mlflow.spark``, which moves it
through DFS on a cluster so executors can read it) and :func:`load_recommender` reads them back.

**Exclusions.** Recommending what a user has just bought wastes a slot, so :func:`recommend`
and :func:`popularity_recommend` take pairs to exclude (typically
:func:`~clickstream.models.recommender.interactions.purchases_to_exclude`). They ask for ``k``
plus the largest number of exclusions any requested user has, so that after removing them every
user still gets ``k`` products whenever the catalogue has that many left.

**Evaluation.** :func:`precision_recall_at_k` compares top-k lists with what the users carted or
bought in a *later* window
(:func:`~clickstream.models.recommender.interactions.relevant_items`), computed with Spark
aggregations; only the final averages reach the driver.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import mlflow
import mlflow.spark
import pandas as pd
from mlflow import MlflowClient
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

USER_INDEX = "user_index"
ITEM_INDEX = "item_index"


def _dense_index(frame: DataFrame, id_column: str, index_column: str) -> DataFrame:
    # An un-partitioned window sends the distinct ids through one task; that is only the ids
    # (a few tens of MB for tens of millions of users) and, unlike zipWithIndex, stays in the
    # DataFrame API (available on Spark Connect) and gives the same index on every run.
    return (
        frame.select(F.col(id_column).cast("bigint").alias(id_column))
        .distinct()
        .select(
            id_column,
            (F.row_number().over(Window.orderBy(id_column)) - 1).cast("int").alias(index_column),
        )
    )


@dataclass(frozen=True)
class AlsRecommender:
    """A fitted ALS model and the id mappings it was trained with.

    ``users`` has ``user_id bigint, user_index int`` and ``items`` has
    ``product_id bigint, item_index int``: the model only knows the indices.

    The mappings are lazy DataFrames over the training interactions, recomputed whenever they
    are used: those interactions must not change under them (a point-in-time window read at a
    pinned Delta version, or checkpointed), and a job that keeps the model for later must save
    both mappings with it, as the model alone cannot be mapped back.
    """

    model: ALSModel
    users: DataFrame
    items: DataFrame

    @cached_property
    def n_items(self) -> int:
        """Size of the catalogue the model can recommend from (counted once)."""
        return self.items.count()

    def index_users(self, users: DataFrame) -> DataFrame:
        """The known users of ``users`` (column ``user_id``) with their index; unknown dropped."""
        return (
            users.select(F.col("user_id").cast("bigint").alias("user_id"))
            .distinct()
            .join(self.users, on="user_id", how="inner")
        )

    def to_original_ids(self, indexed: DataFrame) -> DataFrame:
        """``indexed`` with ``user_index``/``item_index`` replaced by ``user_id``/``product_id``."""
        result = indexed
        if USER_INDEX in indexed.columns:
            result = result.join(self.users, on=USER_INDEX, how="inner").drop(USER_INDEX)
        if ITEM_INDEX in indexed.columns:
            result = result.join(self.items, on=ITEM_INDEX, how="inner").drop(ITEM_INDEX)
        return result


def train_als(
    interactions: DataFrame,
    *,
    rank: int = 16,
    reg_param: float = 0.1,
    alpha: float = 10.0,
    max_iter: int = 10,
    seed: int = 42,
    num_blocks: int = 10,
) -> AlsRecommender:
    """Fit implicit-feedback ALS on ``interactions`` (``user_id, product_id, strength``).

    ``num_blocks`` is the number of user and of item blocks, the parallelism of an iteration:
    Spark's default of 10 suits a cluster, while a small local fit is several times faster
    with 1 or 2 (every block is a task in each of the iterations' shuffles).

    ``nonnegative`` factors keep scores comparable across users (a score is a sum of positive
    affinities); ``coldStartStrategy="drop"`` makes ``transform`` drop pairs of an id the model
    never saw instead of returning NaN predictions.
    """
    users = _dense_index(interactions, "user_id", USER_INDEX)
    items = _dense_index(interactions, "product_id", ITEM_INDEX)
    indexed = (
        interactions.select(
            F.col("user_id").cast("bigint").alias("user_id"),
            F.col("product_id").cast("bigint").alias("product_id"),
            F.col("strength").cast("float").alias("strength"),
        )
        .join(users, on="user_id")
        .join(items, on="product_id")
        .select(USER_INDEX, ITEM_INDEX, "strength")
    )
    if indexed.isEmpty():
        raise ValueError("no interactions to train on")
    als = ALS(
        userCol=USER_INDEX,
        itemCol=ITEM_INDEX,
        ratingCol="strength",
        implicitPrefs=True,
        coldStartStrategy="drop",
        nonnegative=True,
        rank=rank,
        regParam=reg_param,
        alpha=alpha,
        maxIter=max_iter,
        seed=seed,
        numUserBlocks=num_blocks,
        numItemBlocks=num_blocks,
    )
    return AlsRecommender(model=als.fit(indexed), users=users, items=items)


def log_recommender(recommender: AlsRecommender) -> str:
    """Log the model and its id maps to the active run; returns the model URI."""
    info = mlflow.spark.log_model(recommender.model, artifact_path="als")
    with tempfile.TemporaryDirectory(prefix="id-maps-") as tmp:
        for name, frame in (("users", recommender.users), ("items", recommender.items)):
            frame.toPandas().to_parquet(Path(tmp) / f"{name}.parquet", index=False)
        mlflow.log_artifact(str(Path(tmp) / "users.parquet"), "id_maps/users")
        mlflow.log_artifact(str(Path(tmp) / "items.parquet"), "id_maps/items")
    return info.model_uri


def load_recommender(spark: SparkSession, name: str, version: str) -> AlsRecommender:
    """The registered ALS model and the id maps logged next to it."""
    client = MlflowClient()
    run_id = client.get_model_version(name, version).run_id
    model = mlflow.spark.load_model(f"models:/{name}/{version}").stages[0]
    maps = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="id_maps"))
    # Read on the driver: a driver-local download is not visible to a cluster's executors.
    users = spark.createDataFrame(pd.read_parquet(maps / "users" / "users.parquet"))
    items = spark.createDataFrame(pd.read_parquet(maps / "items" / "items.parquet"))
    return AlsRecommender(model=model, users=users, items=items)


def _max_exclusions(
    users: DataFrame, exclude: DataFrame | None, products: DataFrame | None = None
) -> int:
    """The largest number of excluded products of one of ``users`` (among ``products``)."""
    if exclude is None:
        return 0
    pairs = (
        exclude.select(
            F.col("user_id").cast("bigint").alias("user_id"),
            F.col("product_id").cast("bigint").alias("product_id"),
        )
        .distinct()
        .join(users.select("user_id"), on="user_id", how="left_semi")
    )
    if products is not None:
        # An excluded product the candidates cannot contain takes no slot.
        pairs = pairs.join(products.select("product_id"), on="product_id", how="left_semi")
    largest = pairs.groupBy("user_id").count().agg(F.max("count")).first()[0]
    return int(largest or 0)


def _top_k(candidates: DataFrame, k: int, exclude: DataFrame | None) -> DataFrame:
    """Per user, the ``k`` best candidates (``user_id, product_id, score``) not excluded."""
    if exclude is not None:
        candidates = candidates.join(
            exclude.select(
                F.col("user_id").cast("bigint").alias("user_id"),
                F.col("product_id").cast("bigint").alias("product_id"),
            ),
            on=["user_id", "product_id"],
            how="left_anti",
        )
    # product_id breaks ties so that equal scores still give one ranking.
    order = Window.partitionBy("user_id").orderBy(F.col("score").desc(), F.col("product_id"))
    return (
        candidates.withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= k)
        .select(
            F.col("user_id").cast("bigint"),
            F.col("product_id").cast("bigint"),
            F.col("rank").cast("int"),
            F.col("score").cast("double"),
        )
    )


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def recommend(
    recommender: AlsRecommender,
    users: DataFrame,
    k: int,
    exclude: DataFrame | None = None,
) -> DataFrame:
    """Top-``k`` ALS products per user: ``user_id, product_id, rank (1..k), score``.

    Pairs in ``exclude`` (``user_id, product_id``) are never recommended. Users the model was
    not trained on get no rows (ALS has no factors for them): the caller falls back to
    :func:`popularity_recommend` for them if it wants full coverage. A user gets fewer than
    ``k`` rows only when the catalogue has fewer than ``k`` products left after exclusions.
    """
    _check_k(k)
    known = recommender.index_users(users)
    # ALS's top-n cannot skip exclusions, so ask for enough extra items that removing the
    # exclusions of the worst-off user still leaves k; past the catalogue size, score all.
    wanted = min(k + _max_exclusions(known, exclude, recommender.items), recommender.n_items)
    scored = (
        recommender.model.recommendForUserSubset(known.select(USER_INDEX), wanted)
        .select(USER_INDEX, F.explode("recommendations").alias("rec"))
        .select(
            USER_INDEX,
            F.col("rec")[ITEM_INDEX].alias(ITEM_INDEX),
            F.col("rec")["rating"].cast("double").alias("score"),
        )
        .join(known, on=USER_INDEX)  # known already maps the requested users back
        .drop(USER_INDEX)
    )
    return _top_k(recommender.to_original_ids(scored), k, exclude)


def popularity_recommend(
    interactions: DataFrame,
    users: DataFrame,
    k: int,
    exclude: DataFrame | None = None,
) -> DataFrame:
    """The baseline: the ``k`` most popular products not excluded, the same for every user.

    Popularity is the total ``strength`` of a product in ``interactions`` (ties broken by the
    smaller ``product_id``); ``score`` is that total. Unlike :func:`recommend`, every user in
    ``users`` gets rows, known or not. Same columns as :func:`recommend`.
    """
    _check_k(k)
    requested = users.select(F.col("user_id").cast("bigint").alias("user_id")).distinct()
    wanted = k + _max_exclusions(requested, exclude)
    # Only the head of the ranking can reach anyone's top k, so the cross join stays
    # users x (k + max exclusions) rows however big the catalogue is.
    popular = (
        interactions.groupBy(F.col("product_id").cast("bigint").alias("product_id"))
        .agg(F.sum("strength").cast("double").alias("score"))
        .orderBy(F.col("score").desc(), F.col("product_id"))
        .limit(wanted)
    )
    return _top_k(requested.crossJoin(popular), k, exclude)


def precision_recall_at_k(
    recommendations: DataFrame, relevant: DataFrame, k: int
) -> dict[str, float | int]:
    """Mean precision@k and recall@k over the users with at least one relevant product.

    Per user: hits = relevant products among the recommendations of rank <= ``k``;
    precision = hits / k, recall = hits / number of relevant products. A user with relevant
    products but no recommendation counts with 0 hits (a model that abstains is not rewarded);
    users without relevant products are not evaluated. To compare two models, give them the
    same ``relevant`` population. With no relevant product at all, both means are 0.0 and
    ``users`` is 0.
    """
    _check_k(k)
    targets = relevant.select(
        F.col("user_id").cast("bigint").alias("user_id"),
        F.col("product_id").cast("bigint").alias("product_id"),
    ).distinct()
    top = (
        recommendations.where(F.col("rank") <= k)
        .select(
            F.col("user_id").cast("bigint").alias("user_id"),
            F.col("product_id").cast("bigint").alias("product_id"),
        )
        .distinct()
    )
    per_user = (
        targets.join(top.withColumn("hit", F.lit(1)), on=["user_id", "product_id"], how="left")
        .groupBy("user_id")
        .agg(F.count("*").alias("relevant"), F.count("hit").alias("hits"))
        .select(
            (F.col("hits") / F.lit(float(k))).alias("precision"),
            (F.col("hits") / F.col("relevant")).alias("recall"),
        )
    )
    row = per_user.agg(
        F.avg("precision").alias("precision"),
        F.avg("recall").alias("recall"),
        F.count("*").alias("users"),
    ).first()
    return {
        "precision_at_k": float(row["precision"] or 0.0),
        "recall_at_k": float(row["recall"] or 0.0),
        "users": int(row["users"]),
    }
