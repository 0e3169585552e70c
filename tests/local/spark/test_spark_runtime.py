"""The local cluster's Spark configuration: defaults and the LOCAL_SPARK_CONF overrides."""

from __future__ import annotations

import os

import pytest

from local.spark.runtime import spark_conf


def test_extra_settings_are_added_and_override_the_defaults(local_layout, monkeypatch):
    monkeypatch.setenv(
        "LOCAL_SPARK_CONF", "spark.sql.adaptive.enabled=false  spark.sql.ansi.enabled=true"
    )
    conf = spark_conf(local_layout)
    assert conf["spark.sql.adaptive.enabled"] == "false"  # a default, overridden
    assert conf["spark.sql.ansi.enabled"] == "true"  # not a default, added
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"


def test_without_extra_settings_the_cluster_defaults_apply(local_layout, monkeypatch):
    monkeypatch.delenv("LOCAL_SPARK_CONF", raising=False)
    monkeypatch.delenv("LOCAL_SPARK_SHUFFLE_PARTITIONS", raising=False)
    conf = spark_conf(local_layout)
    assert conf["spark.sql.adaptive.enabled"] == "true"
    assert conf["spark.sql.shuffle.partitions"] == "4"
    assert "spark.sql.codegen.factoryMode" not in conf


@pytest.mark.parametrize(
    "item", ["spark.sql.ansi.enabled", "ansi=true", "spark.sql.ansi.enabled=", "=true"]
)
def test_a_malformed_extra_setting_is_refused_by_name(local_layout, monkeypatch, item):
    monkeypatch.setenv("LOCAL_SPARK_CONF", f"spark.sql.adaptive.enabled=false {item}")
    with pytest.raises(
        ValueError, match=r"LOCAL_SPARK_CONF: .* is not a spark\.<key>=<value>"
    ) as e:
        spark_conf(local_layout)
    assert repr(item) in str(e.value)


@pytest.mark.spark
def test_the_test_session_runs_with_the_settings_of_the_environment(spark):
    """The session fixture applies LOCAL_SPARK_CONF (tests/conftest.py sets the test defaults:
    no whole-stage code generation, one shuffle partition); job processes inherit it."""
    settings = [item.split("=", 1) for item in os.environ["LOCAL_SPARK_CONF"].split()]
    assert settings
    for key, value in settings:
        assert spark.conf.get(key) == value
    partitions = os.environ["LOCAL_SPARK_SHUFFLE_PARTITIONS"]
    assert spark.conf.get("spark.sql.shuffle.partitions") == partitions
