"""Batch scoring of every active user with the registry's champion, on Spark.

Scoring is distributed: ``mlflow.pyfunc.spark_udf`` ships the champion to the executors, where
each Python worker loads it once and scores Arrow batches of rows; nothing is collected to the
driver, so the driver's memory does not grow with the number of users (``bench/`` measures it).

The alias is resolved once, on the driver, to a version: every row of a run is scored by the
same version even if ``champion`` moves meanwhile, and the rows say which one (lineage columns:
model name, version, alias, feature date, logical date, Airflow run id). The active users of a
date are the rows of the online feature table (MRDS) with that feature date. A rerun replaces
the ``score_date`` partition, so each date holds exactly one scoring.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream import registry
from clickstream.contracts import (
    FEATURE_COLUMNS,
    ONLINE_FEATURES,
    PROPENSITY_SCORES,
    write_partition,
)
from clickstream.schema import parse_ds


def active_users(spark: SparkSession, catalog: str, gold_schema: str, ds: str) -> DataFrame:
    online = ONLINE_FEATURES.name(catalog, gold_schema)
    if not spark.catalog.tableExists(online):
        raise registry.RegistryError(
            f"{online} does not exist: run the online_feature_table DAG for {ds} first"
        )
    return spark.table(online).where(F.col("feature_date") == F.lit(parse_ds(ds)).cast("date"))


def lineage(
    ref: registry.ChampionRef, ds: str, airflow_run_id: str, alias: str = registry.CHAMPION
) -> list[Column]:
    """The lineage columns of an output row (the input needs a ``feature_date`` column)."""
    day = F.lit(parse_ds(ds)).cast("date")
    return [
        F.lit(ref.name).alias("model_name"),
        F.lit(ref.version).alias("model_version"),
        F.lit(alias).alias("model_alias"),
        F.col("feature_date"),
        day.alias("logical_date"),
        F.lit(airflow_run_id).alias("airflow_run_id"),
        day.alias("score_date"),
    ]


def score(spark: SparkSession, users: DataFrame, model_uri: str) -> DataFrame:
    """``users`` with a ``score`` column: P(purchase) from the model's ``predict_proba``."""
    import mlflow.pyfunc

    predict = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type="array<double>", env_manager="local"
    )
    # The model's signature takes every feature as a double, named as in the feature table.
    inputs = [F.col(c).cast("double").alias(c) for c in FEATURE_COLUMNS]
    return users.withColumn("score", predict(F.struct(*inputs))[1])


def score_users(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    model_name: str,
    airflow_run_id: str,
    gold_schema: str = "gold",
) -> dict:
    """Score the active users of ``ds`` with the champion into ``gold.propensity_scores``."""
    from mlflow import MlflowClient

    ref = registry.champion(MlflowClient(), model_name)
    users = active_users(spark, catalog, gold_schema, ds)
    scored = score(spark, users, ref.uri).select(
        "user_id", "score", *lineage(ref, ds, airflow_run_id)
    )
    table = write_partition(
        spark,
        scored,
        PROPENSITY_SCORES,
        catalog,
        f"score_date = DATE'{parse_ds(ds)}'",
        gold_schema,
    )
    return {"table": table, "model": ref.uri}
