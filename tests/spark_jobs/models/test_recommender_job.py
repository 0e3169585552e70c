"""The recommender job on real Spark and MLflow: ALS beats popularity on planted taste groups,
is registered and promoted by the alias rule, and the daily recommendations cover every active
user with lineage, exclusions and the popularity fallback."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from mlflow import MlflowClient
from pyspark.sql import functions as F

from clickstream.core.contracts import ONLINE_FEATURES, table_version
from clickstream.models import registry
from clickstream.models.recommender.training import (
    FALLBACK_ALIAS,
    RecommenderConfig,
    recommend_for_date,
)
from clickstream.models.recommender.training import train_recommender as train
from tests.support.rows import event

pytestmark = pytest.mark.spark

AS_OF = date(2019, 11, 30)
GROUPS = {0: range(100, 115), 1: range(200, 215)}  # disjoint product sets, one per taste group


def _events() -> list[tuple]:
    """40 users in two taste groups; each views and carts products of its own group only.

    Group popularity is skewed so that the globally most popular products are group 0's:
    popularity then serves group 1 badly, while ALS learns the groups.
    """
    rows = []
    for user in range(1, 41):
        group = 0 if user <= 24 else 1
        products = list(GROUPS[group])
        for offset in range(14):
            day = AS_OF - timedelta(days=offset)
            product = products[(user * 7 + offset * 3) % len(products)]
            kind = "cart" if offset < 5 and offset % 2 == 0 else "view"
            rows.append(event(user, day, kind, product=product, session=f"{user}-{offset}"))
    # The user 1 bought product 100 yesterday: it must not be recommended to them.
    rows.append(event(1, AS_OF - timedelta(days=1), "purchase", product=100, session="buy"))
    return rows


@pytest.fixture(scope="module")
def silver(spark):
    schema = f"t_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA {schema}")
    from tests.support.rows import SILVER_SCHEMA

    spark.createDataFrame(_events(), SILVER_SCHEMA).write.format("delta").saveAsTable(
        f"{schema}.events"
    )
    # The active users of AS_OF: 1..40 plus user 99, whom the model has never seen.
    online = (
        spark.range(1, 41)
        .union(spark.range(99, 100))
        .select(
            F.col("id").alias("user_id"),
            F.lit(AS_OF.isoformat()).cast("date").alias("feature_date"),
        )
    )
    for column in ONLINE_FEATURES.columns[2:]:
        online = online.withColumn(
            column.name,
            F.current_timestamp() if column.type == "timestamp" else F.lit(0).cast(column.type),
        )
    online.write.format("delta").saveAsTable(f"{schema}.user_features_online")
    return schema


def test_recommender_trains_beats_popularity_and_serves_every_active_user(
    spark, tracking, silver, monkeypatch
):
    name = f"recommender_{uuid.uuid4().hex[:8]}"
    config = RecommenderConfig(
        model_name=name, experiment=tracking, as_of=AS_OF.isoformat(), train_days=9, eval_days=5
    )
    queries, sql = [], spark.sql

    def recorded_sql(query, *args, **kwargs):
        queries.append(query)
        return sql(query, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(spark, "sql", recorded_sql)
        result = train(spark, config, "spark_catalog", silver)
    # The lineage tag names the Delta version of the events that was read (time travel).
    events = f"spark_catalog.{silver}.events"
    tagged = result["tags"][f"delta_version.{events}"]
    assert tagged == str(table_version(spark, events))
    assert f"SELECT * FROM {events} VERSION AS OF {tagged}" in queries
    run = MlflowClient().get_model_version(name, result["version"]).run_id
    assert MlflowClient().get_run(run).data.tags[f"delta_version.{events}"] == tagged
    metrics = result["metrics"]
    assert metrics["precision_at_10"] > metrics["popularity_precision_at_10"]
    assert result["decision"].promote is True
    assert result["decision"].reference == "popularity baseline"
    client = MlflowClient()
    assert registry.champion(client, name).version == result["version"]

    # A second training on the same data ties with the champion: the champion stays.
    again = train(spark, config, "spark_catalog", silver)
    assert again["decision"].promote is False
    assert registry.champion(client, name).version == result["version"]

    recommend_for_date(
        spark,
        ds=AS_OF.isoformat(),
        catalog="spark_catalog",
        model_name=name,
        airflow_run_id="scheduled__x",
        silver_schema=silver,
        gold_schema=silver,
    )
    recs = spark.table(f"{silver}.recommendations")
    per_user = {
        r["user_id"]: r["n"] for r in recs.groupBy("user_id").agg(F.count("*").alias("n")).collect()
    }
    assert set(per_user) == set(range(1, 41)) | {99}
    assert set(per_user.values()) == {10}
    assert recs.where("user_id = 1 AND product_id = 100").count() == 0  # bought: excluded
    aliases = {
        r["user_id"]: r["model_alias"]
        for r in recs.select("user_id", "model_alias").distinct().collect()
    }
    assert aliases[99] == FALLBACK_ALIAS
    assert {aliases[u] for u in range(1, 41)} == {"champion"}
    lineage = recs.select(
        "model_name", "model_version", "logical_date", "airflow_run_id"
    ).distinct()
    assert [tuple(map(str, r)) for r in lineage.collect()] == [
        (name, result["version"], AS_OF.isoformat(), "scheduled__x")
    ]
    ranks = recs.groupBy("user_id").agg(F.sort_array(F.collect_list("rank")).alias("r"))
    assert {tuple(r["r"]) for r in ranks.collect()} == {tuple(range(1, 11))}
