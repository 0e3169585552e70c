"""Batch scoring of every active user with the registry's champion, on Spark.

Scoring is distributed: the champion (a scikit-learn pipeline) is loaded once on the driver and
broadcast, so each executor receives it once; ``mapInPandas`` scores Arrow batches of rows with
``predict_proba`` and nothing is collected to the driver, so the driver's memory does not grow
with the number of users. ``mlflow.pyfunc.spark_udf`` did the same job at about half the speed:
it rebuilds a pandas frame from a struct column and enforces the model signature on every
batch, work the explicit feature selection and cast below already do once
(``bench/scoring.py`` measures both against driver-side ``toPandas()`` scoring).

The alias is resolved once, on the driver, to a version: every row of a run is scored by the
same version even if ``champion`` moves meanwhile, and the rows say which one (lineage columns:
model name, version, alias, feature date, logical date, Airflow run id). The active users of a
date are the rows of the online feature table (MRDS) with that feature date. A rerun replaces
the ``score_date`` partition, so each date holds exactly one scoring.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clickstream.core.contracts import (
    FEATURE_COLUMNS,
    ONLINE_FEATURES,
    PROPENSITY_SCORES,
    write_partition,
)
from clickstream.core.schema import parse_ds
from clickstream.models import registry


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


#: Rows per Arrow batch handed to ``predict_proba``: big enough that the per-batch cost
#: (a pandas frame, one sklearn call) is small next to the arithmetic, small enough to stay a
#: few tens of MB per Python worker.
SCORING_BATCH_ROWS = 100_000


def score(spark: SparkSession, users: DataFrame, model_uri: str) -> DataFrame:
    """``users`` with a ``score`` column, P(purchase) from the model's ``predict_proba``, in
    place of the feature columns (which need not travel back from the Python workers)."""
    import mlflow.sklearn

    model = spark.sparkContext.broadcast(mlflow.sklearn.load_model(model_uri))
    features = list(FEATURE_COLUMNS)
    kept = [f for f in users.schema.fields if f.name not in FEATURE_COLUMNS]
    output = T.StructType([*kept, T.StructField("score", T.DoubleType())])

    def predict(batches):
        pipeline = model.value  # deserialised once per Python worker, then cached
        for batch in batches:
            # The model's signature takes every feature as a double, named as in the table.
            proba = pipeline.predict_proba(batch[features].astype("float64"))[:, 1]
            yield batch.drop(columns=features).assign(score=proba)

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(SCORING_BATCH_ROWS))
    return users.mapInPandas(predict, output)


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
