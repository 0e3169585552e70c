"""What ALS must beat to be worth its cost: two popularity baselines without any learning.

* **Global popularity** (:func:`~clickstream.models.recommender.als.popularity_recommend`): the
  same best sellers for everyone.
* **Category-aware popularity** (:func:`category_popularity_recommend`): each user's categories'
  best sellers, weighted by the user's category history. The score of product ``p`` for user
  ``u`` is the share of ``u``'s interaction strength that went to ``p``'s category times ``p``'s
  share of its category's strength: what the category mix alone predicts, with no item-level
  taste. A user without history, or whose categories cannot fill ``k`` slots, gets the global
  list after the category picks, so every requested user gets ``k`` products.

Both read the same training interactions as ALS and take the same exclusions, so the three are
scored on the same rows by :func:`~clickstream.models.recommender.als.precision_recall_at_k`.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from clickstream.models.recommender.als import _check_k, _max_exclusions, _top_k
from clickstream.models.recommender.interactions import _known_by

# Events without a category_id still belong somewhere: one category of their own.
NO_CATEGORY = -1


def product_categories(events: DataFrame, start: date, end: date) -> DataFrame:
    """``product_id, category_id`` of the products of [start, end] (point in time).

    A product listed under several categories keeps the largest id, so it has exactly one.
    """
    return (
        _known_by(events, start, end)
        .groupBy(F.col("product_id").cast("bigint").alias("product_id"))
        .agg(F.max(F.col("category_id").cast("bigint")).alias("category_id"))
        .select("product_id", F.coalesce("category_id", F.lit(NO_CATEGORY)).alias("category_id"))
    )


def category_popularity_recommend(
    interactions: DataFrame,
    categories: DataFrame,
    users: DataFrame,
    k: int,
    exclude: DataFrame | None = None,
) -> DataFrame:
    """Top-``k`` of each user's categories' best sellers: ``user_id, product_id, rank, score``.

    ``categories`` maps ``product_id`` to ``category_id`` (:func:`product_categories`); an
    interacted product it does not list counts as :data:`NO_CATEGORY`. Category picks score in
    (0, 1]; the global fallback scores below 0 (its share of all strength, minus 1), so it only
    fills what the categories leave. Ties break on the smaller ``product_id``.
    """
    _check_k(k)
    requested = users.select(F.col("user_id").cast("bigint").alias("user_id")).distinct()
    wanted = k + _max_exclusions(requested, exclude)
    feedback = (
        interactions.select(
            F.col("user_id").cast("bigint").alias("user_id"),
            F.col("product_id").cast("bigint").alias("product_id"),
            F.col("strength").cast("double").alias("strength"),
        )
        .join(categories.select("product_id", "category_id"), on="product_id", how="left")
        .withColumn("category_id", F.coalesce("category_id", F.lit(NO_CATEGORY).cast("bigint")))
    )
    in_category = Window.partitionBy("category_id")
    best = Window.partitionBy("category_id").orderBy(F.col("share").desc(), "product_id")
    # Only a category's head can reach anyone's top k: users x their categories x wanted rows.
    sellers = (
        feedback.groupBy("category_id", "product_id")
        .agg(F.sum("strength").alias("strength"))
        .withColumn("share", F.col("strength") / F.sum("strength").over(in_category))
        .withColumn("position", F.row_number().over(best))
        .where(F.col("position") <= wanted)
        .select("category_id", "product_id", F.col("share").alias("product_share"))
    )
    history = (
        feedback.join(requested, on="user_id", how="left_semi")
        .groupBy("user_id", "category_id")
        .agg(F.sum("strength").alias("strength"))
        .withColumn(
            "user_share", F.col("strength") / F.sum("strength").over(Window.partitionBy("user_id"))
        )
        .select("user_id", "category_id", "user_share")
    )
    by_category = history.join(sellers, on="category_id").select(
        "user_id", "product_id", (F.col("user_share") * F.col("product_share")).alias("score")
    )
    total = feedback.agg(F.sum("strength").alias("total"))
    overall = (
        feedback.groupBy("product_id")
        .agg(F.sum("strength").alias("strength"))
        .orderBy(F.col("strength").desc(), "product_id")
        .limit(wanted)
        .crossJoin(total)
        .select("product_id", (F.col("strength") / F.col("total") - 1).alias("score"))
    )
    candidates = (
        by_category.unionByName(requested.crossJoin(overall))
        .groupBy("user_id", "product_id")
        .agg(F.max("score").alias("score"))
    )
    return _top_k(candidates, k, exclude)
