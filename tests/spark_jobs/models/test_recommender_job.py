"""The recommender job on real Spark and MLflow: ALS beats popularity on planted taste groups,
is registered and promoted by the alias rule, and the daily recommendations cover every active
user with lineage, exclusions and the popularity fallback."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient
from pyspark.sql import functions as F

from clickstream.core.contracts import table_version
from clickstream.models import registry
from clickstream.models.recommender.serving import FALLBACK_ALIAS, recommend_for_date
from clickstream.models.recommender.training import RecommenderConfig
from clickstream.models.recommender.training import train_recommender as train
from tests.support.training_data import RECOMMENDER_AS_OF as AS_OF
from tests.support.training_data import recommender_silver

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def silver(spark):
    """Two taste groups' silver events and the online features of AS_OF's active users."""
    return recommender_silver(spark)


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
