"""Reruns and backfills of the writing jobs that no other test reruns: two runs leave the same
tables (every row, every column), a backfill in any order leaves the day-by-day tables, and a
retraining registers a version without moving ``champion`` to an equal model.

The other writing jobs are rerun by the tests of their own area: ingest
(``tests/spark_jobs/pipeline/test_ingest.py``), silver, features and online (``test_pipeline_days.py``,
``test_silver_and_online.py``, ``test_features.py``), serving (``test_training.py``), the
recommender's training (``test_recommender_job.py``), validation (``test_quality.py``) and
drift (``test_drift.py``).
"""

from __future__ import annotations

import random

import pytest
from load_history import main as history_main
from mlflow import MlflowClient
from pyspark.testing import assertDataFrameEqual
from recommend_products import main as recommend_main
from train_models import main as train_main

from clickstream.models import registry
from clickstream.models.recommender.training import RecommenderConfig
from clickstream.models.recommender.training import train_recommender as train_recommender_model
from tests.support.landing import DAYS, LANDING, ingest, volumes_root
from tests.support.tables import assert_tables_equal, snapshot
from tests.support.training_data import (
    PROPENSITY_AS_OF,
    RECOMMENDER_AS_OF,
    propensity_tables,
    recommender_silver,
)

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def silver(spark):
    """The recommender tests' silver events and online features (one schema)."""
    return recommender_silver(spark)


def test_ingest_backfill_in_shuffled_order_equals_the_days_in_order(
    spark, volumes, bronze_sequential, new_schema
):
    schema = new_schema("rel_bronze_shuffled")
    order = DAYS[:]
    random.Random(7).shuffle(order)
    assert order != DAYS
    for ds in [*order, order[0]]:  # and the first date once more, after the others
        ingest(volumes, schema, ds)
    assert_tables_equal(spark, schema, bronze_sequential)


def test_load_history_rerun_leaves_every_table_identical(spark, volumes, new_schema):
    bronze, silver_schema = new_schema("rel_hist_bronze"), new_schema("rel_hist_silver")
    argv = [
        "--start-ds",
        DAYS[0],
        "--end-ds",
        DAYS[-1],
        "--catalog",
        "spark_catalog",
        "--landing-dir",
        LANDING,
        "--label-horizon-days",
        "2",
        "--bronze-schema",
        bronze,
        "--silver-schema",
        silver_schema,
    ]
    with volumes_root(volumes):
        history_main(argv)
        first = {schema: snapshot(spark, schema) for schema in (bronze, silver_schema)}
        assert set(first[silver_schema]) >= {"events", "user_features", "user_labels"}
        history_main(argv)
    for schema, tables in first.items():
        assert_tables_equal(spark, schema, tables)


def test_a_retraining_on_the_same_data_adds_a_version_and_keeps_the_champion(
    spark, tracking, new_schema
):
    """A rerun of the training task (a cleared or retried ``train_models``) registers a new
    version as challenger; equal to the champion, it is not promoted: champion stays."""
    schema = new_schema("rel_train")
    propensity_tables(spark, schema, PROPENSITY_AS_OF)
    name = new_schema("rel_propensity")
    argv = [
        "--ds",
        PROPENSITY_AS_OF,
        "--catalog",
        "spark_catalog",
        "--silver-schema",
        schema,
        "--model-name",
        name,
        "--experiment",
        tracking,
        "--train-days",
        "10",
        "--validation-days",
        "5",
        "--max-train-rows",
        "1500",
        "--git-commit",
        "abc123",
    ]
    client = MlflowClient()
    train_main(argv)
    first = registry.champion(client, name).version
    train_main(argv)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    assert versions == [int(first), int(first) + 1]
    again = str(versions[-1])
    assert registry.champion(client, name).version == first
    assert registry.alias_version(client, name, registry.CHALLENGER) == again
    assert client.get_model_version(name, again).tags["decision"] == "kept"


def test_recommend_products_rerun_leaves_the_table_identical(spark, tracking, silver):
    name = f"rel_recommender_{random.Random().randrange(16**8):08x}"
    config = RecommenderConfig(
        model_name=name,
        experiment=tracking,
        as_of=RECOMMENDER_AS_OF.isoformat(),
        train_days=9,
        eval_days=5,
    )
    train_recommender_model(spark, config, "spark_catalog", silver)
    argv = [
        "--ds",
        RECOMMENDER_AS_OF.isoformat(),
        "--catalog",
        "spark_catalog",
        "--model-name",
        name,
        "--airflow-run-id",
        "scheduled__x",
        "--silver-schema",
        silver,
        "--gold-schema",
        silver,
    ]
    recommend_main(argv)
    first = spark.table(f"{silver}.recommendations").collect()
    assert first
    recommend_main(argv)
    assertDataFrameEqual(spark.table(f"{silver}.recommendations"), first)
