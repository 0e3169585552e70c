"""The catalog set-up (``clickstream/core/catalog.py``, ``spark_jobs/setup_catalog.py``)
creates every schema an environment uses; no Spark (the job runs on a fresh local catalog in
``tests/local/workspace/test_jobs_api.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clickstream.core.catalog import (
    CONTRACTS,
    VOLUMES,
    model_schema,
    schemas,
    statements,
    volume_schema,
)
from clickstream.core.contracts import ONLINE_FEATURES, primary_key_sql
from ecom_airflow.config import current_environment
from local.docs.job_io import Package

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["dev", "prod"])
def env(request, monkeypatch):
    for name in ("ECOM_INSTANCE_POOL_ID", "ECOM_DRIVER_INSTANCE_POOL_ID", "ECOM_COMPUTE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECOM_ENV", request.param)
    monkeypatch.setenv("ECOM_GIT_URL", "https://git.example.com/ecom.git")
    monkeypatch.setenv("ECOM_GIT_REF", "v1.4.0")
    return current_environment()


def _used_schemas(env) -> set[str]:
    """Derived without the set-up's own lists: every ``Contract(schema=...)`` declared in the
    job library (parsed), the Volumes root's schema and the schemas of the model names."""
    used = {table.split(".")[0] for table in Package().contracts.values()}
    used.add(env.volume_root.strip("/").split("/")[2])
    used |= {name.split(".")[1] for name in (env.model_name, env.recommender_name)}
    return used


def test_the_setup_creates_every_schema_the_environment_uses(env):
    used = _used_schemas(env)
    assert {"ml", "raw"} <= used
    sql = statements(env.catalog, env.volume_root, [env.model_name, env.recommender_name])
    created = {
        m.group(1)
        for s in sql
        if (m := re.fullmatch(rf"CREATE SCHEMA IF NOT EXISTS {env.catalog}\.(\w+)", s))
    }
    assert created == used
    assert [s for s in sql if s.startswith("CREATE VOLUME")] == [
        f"CREATE VOLUME IF NOT EXISTS {env.catalog}.raw.{volume}" for volume in VOLUMES
    ]


def test_the_setup_creates_every_declared_table():
    declared = set(Package().contracts.values())
    assert {f"{c.schema}.{c.table}" for c in CONTRACTS} == declared


def test_the_deployment_guide_grants_every_schema(env):
    guide = (ROOT / "docs" / "deployment.md").read_text()
    for catalog, schema in schemas(env.catalog, env.volume_root, [env.model_name]):
        grant = f"ON SCHEMA {catalog.replace('dev', 'prod')}.{schema} TO"
        assert grant in guide, schema


def test_names_are_checked_before_they_reach_sql():
    assert model_schema("ecom_propensity") is None  # the local registry's names
    assert model_schema("ecom_prod.ml.propensity") == ("ecom_prod", "ml")
    with pytest.raises(ValueError, match="neither"):
        model_schema("a.b")
    with pytest.raises(ValueError, match="not a valid"):
        model_schema("ecom_prod.ml;DROP.x")
    with pytest.raises(ValueError, match="not /Volumes"):
        volume_schema("/tmp/raw")
    assert volume_schema("/Volumes/ecom_prod/raw") == ("ecom_prod", "raw")


def test_the_online_table_is_ready_for_a_triggered_synced_table():
    assert ONLINE_FEATURES.properties["delta.enableChangeDataFeed"] == "true"
    assert ONLINE_FEATURES.primary_key == ("user_id",)
    assert primary_key_sql(ONLINE_FEATURES, "ecom_prod") == (
        "ALTER TABLE ecom_prod.gold.user_features_online ADD CONSTRAINT "
        "user_features_online_pk PRIMARY KEY (user_id)"
    )
