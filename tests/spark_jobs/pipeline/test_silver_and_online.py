"""Silver events (dedup, late events, rerun, order), the online table and the skew check,
and the schema contracts that guard every write."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clickstream.core.contracts import (
    ONLINE_FEATURES,
    USER_FEATURES,
    Column,
    Contract,
    SchemaContractError,
    check_frame,
    ensure_table,
)
from clickstream.core.schema import HEADER
from clickstream.pipeline.features import build_features
from clickstream.pipeline.ingest import ingest
from clickstream.pipeline.online import FeatureSkewError, check_skew, publish_online
from clickstream.pipeline.silver import build_silver_events

pytestmark = pytest.mark.spark

CATALOG = "spark_catalog"
D1, D2, D3 = "2019-10-01", "2019-10-02", "2019-10-03"
E = {
    "a": "2019-10-01 08:00:00 UTC,view,1,2053013552326770905,,acme,10.00,500000001,s-a",
    "b": "2019-10-01 09:00:00 UTC,cart,1,2053013552326770905,,acme,10.00,500000001,s-a",
    "c": "2019-10-02 10:00:00 UTC,view,2,2053013552326770905,tv.big,,99.90,500000002,s-c",
    # An event of October 1 delivered late, in October 3's file.
    "late": "2019-10-01 23:59:00 UTC,view,3,2053013552326770905,,acme,5.00,500000003,s-l",
    "d": "2019-10-03 11:00:00 UTC,purchase,2,2053013552326770905,tv.big,,99.90,500000002,s-d",
}
# Day files: event a is delivered twice on day 1 (a tracker retry) and again on day 2.
FILES = {
    D1: [E["a"], E["a"], E["b"]],
    D2: [E["c"], E["a"]],
    D3: [E["d"], E["late"]],
}


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    for ds, lines in FILES.items():
        folder = root / ds
        folder.mkdir()
        (folder / "events.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    return str(root)


def _load(spark, landing, schema, order):
    for ds in order:
        ingest(spark, ds=ds, catalog=CATALOG, landing_dir=landing, schema=f"{schema}_b")
    for ds in order:
        build_silver_events(
            spark, ds=ds, catalog=CATALOG, bronze_schema=f"{schema}_b", silver_schema=schema
        )
    return spark.table(f"{schema}.events")


@pytest.fixture(scope="module")
def loaded(spark, landing):
    """Days 1..3 ingested, merged into silver and featurised, in order, once per module."""
    schema = f"t_{uuid.uuid4().hex[:8]}"
    _load(spark, landing, schema, [D1, D2, D3])
    build_features(spark, start=D1, end=D3, catalog=CATALOG, silver_schema=schema)
    return schema


def test_silver_holds_each_event_once_in_its_event_date_partition(spark, loaded):
    silver = spark.table(f"{loaded}.events")
    rows = silver.select("user_session", "event_type", "event_date", "ingest_date").collect()
    got = sorted((r[0], r[1], str(r[2]), str(r[3])) for r in rows)
    assert got == [
        ("s-a", "cart", D1, D1),
        ("s-a", "view", D1, D1),  # three deliveries, one row, first delivery kept
        ("s-c", "view", D2, D2),
        ("s-d", "purchase", D3, D3),
        ("s-l", "view", D1, D3),  # late: its own event date, delivered on day 3
    ]
    assert (
        silver.where(F.col("category_code") == "tv.big")
        .select("category_l1")
        .distinct()
        .collect()[0][0]
        == "tv"
    )


def test_silver_rerun_changes_nothing_and_any_order_gives_the_same_table(
    spark, landing, loaded, schema_name
):
    sequential = spark.table(f"{loaded}.events").collect()
    shuffled = _load(spark, landing, schema_name, [D3, D2, D1])
    assertDataFrameEqual(shuffled, sequential)
    build_silver_events(
        spark, ds=D2, catalog=CATALOG, bronze_schema=f"{schema_name}_b", silver_schema=schema_name
    )
    assertDataFrameEqual(spark.table(f"{schema_name}.events"), sequential)


def test_silver_without_bronze_fails_with_the_step_to_run(spark, schema_name):
    from clickstream.core.jobs import JobError

    with pytest.raises(JobError, match="run ingest_events for 2019-10-01 first"):
        build_silver_events(spark, ds=D1, catalog=CATALOG, bronze_schema=schema_name)


def _online_args(loaded, gold):
    return {"catalog": CATALOG, "silver_schema": loaded, "gold_schema": gold}


def _run_ts(ds: str) -> str:
    return f"{date.fromisoformat(ds) + timedelta(days=1)}T00:00:00+00:00"


def test_online_table_holds_the_latest_row_per_user_in_any_order(spark, loaded, schema_name):
    args = _online_args(loaded, f"{schema_name}_g")
    for ds in (D1, D2, D3):
        publish_online(spark, ds=ds, run_ts=_run_ts(ds), optimize=False, **args)
    online = spark.table(f"{schema_name}_g.user_features_online")
    latest = (
        spark.table(f"{loaded}.user_features")
        .where(F.col("feature_date") == F.lit(D3).cast("date"))
        .withColumn("updated_at", F.lit(_run_ts(D3)).cast("timestamp"))
    )
    assertDataFrameEqual(online, latest.select(*ONLINE_FEATURES.names))
    first = online.collect()
    # Out of order and again: an older date never replaces a newer row; a rerun is a no-op.
    for ds in (D2, D3, D1):
        publish_online(spark, ds=ds, run_ts=_run_ts(ds), **args)
    assertDataFrameEqual(spark.table(f"{schema_name}_g.user_features_online"), first)


def test_skew_check_passes_when_equal_and_names_the_column_that_differs(spark, loaded, schema_name):
    args = _online_args(loaded, f"{schema_name}_g")
    publish_online(spark, ds=D3, run_ts=_run_ts(D3), optimize=False, **args)
    assert check_skew(spark, ds=D3, **args) == 3
    # An older date whose users were superseded by D3 is not a skew.
    assert check_skew(spark, ds=D2, **args) == 2
    online = f"{schema_name}_g.user_features_online"
    spark.sql(f"UPDATE {online} SET views_30d = views_30d + 1 WHERE user_id = 500000002")
    with pytest.raises(FeatureSkewError, match=r"views_30d \(e.g. users \[500000002\]\)"):
        check_skew(spark, ds=D3, **args)
    spark.sql(f"DELETE FROM {online} WHERE user_id = 500000001")
    with pytest.raises(FeatureSkewError, match=r"feature_date \(e.g. users \[500000001\]\)"):
        check_skew(spark, ds=D3, **args)


def _contract(*columns: Column) -> Contract:
    return Contract(schema="s", table="t", columns=columns, comment="test")


def test_a_frame_that_breaks_its_contract_is_refused_naming_the_column(spark):
    df = spark.createDataFrame([(1, "x")], "user_id bigint, extra string")
    contract = _contract(Column("user_id", "bigint"), Column("score", "double"))
    with pytest.raises(SchemaContractError) as error:
        check_frame(df, contract)
    assert "column 'score' is missing" in str(error.value)
    assert "column 'extra' of the job's output is not in the contract" in str(error.value)
    retyped = spark.createDataFrame([(1, "x")], "user_id string, score string")
    with pytest.raises(SchemaContractError, match="'user_id' is string in the job's output"):
        check_frame(retyped, contract)


def test_a_table_gains_only_declared_additive_columns(spark, schema_name):
    v1 = Contract(schema_name, "t", (Column("user_id", "bigint", False),), "test")
    v2 = Contract(
        schema_name,
        "t",
        (Column("user_id", "bigint", False), Column("score", "double", additive=True)),
        "test",
    )
    name = ensure_table(spark, v1, CATALOG)
    spark.sql(f"INSERT INTO {name} VALUES (1)")
    ensure_table(spark, v2, CATALOG)
    assert spark.table(name).columns == ["user_id", "score"]
    assert spark.table(name).collect()[0].asDict() == {"user_id": 1, "score": None}
    undeclared = Contract(schema_name, "t", (*v2.columns, Column("region", "string")), "test")
    with pytest.raises(SchemaContractError, match="column 'region' is missing from table"):
        ensure_table(spark, undeclared, CATALOG)
    retyped = Contract(schema_name, "t", (Column("user_id", "string"), v2.columns[1]), "test")
    with pytest.raises(SchemaContractError, match="'user_id' is bigint in table"):
        ensure_table(spark, retyped, CATALOG)


def test_feature_contract_lists_every_feature_once():
    names = USER_FEATURES.names
    assert len(names) == len(set(names))
    assert names[:2] == ["user_id", "feature_date"]
    assert set(USER_FEATURES.names) | {"updated_at"} == set(ONLINE_FEATURES.names)
