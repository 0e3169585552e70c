"""The single-node DuckDB reference (``local/simulations/duckdb_features.py``, timed by
benchmark 8) is the same computation as ``compute_features``.

Eight generated days go through the real ingest and silver code in one range, as the history
load does (``test_pipeline_days.py`` checks that this gives the day-by-day tables); for several
feature dates the DuckDB query over the silver table's Parquet files must give exactly Spark's
rows: the same users, every column equal (doubles within a relative 1e-9), the contract's names
and types.
"""

from __future__ import annotations

import math
import uuid

import duckdb
import pytest

from clickstream.core.contracts import SILVER_EVENTS, USER_FEATURES
from clickstream.pipeline.features import compute_features
from local.simulations.duckdb_features import duckdb_features, silver_files
from local.simulations.landing import CATALOG, land_synthetic_days, synthetic_days

pytestmark = pytest.mark.spark

_DUCKDB_TYPES = {"bigint": "BIGINT", "int": "INTEGER", "date": "DATE", "double": "DOUBLE"}


def _duckdb_type(contract_type: str) -> str:
    return _DUCKDB_TYPES.get(contract_type, contract_type.upper().replace(" ", ""))


def _differences(expected: dict, actual: dict) -> list[str]:
    problems = []
    for user in sorted(expected):
        for column, want in expected[user].items():
            got = actual[user][column]
            if isinstance(want, float) and isinstance(got, float):
                same = math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-12)
            else:
                same = want == got and type(want) is type(got)
            if not same:
                problems.append(f"user {user} {column}: spark {want!r}, duckdb {got!r}")
    return problems


def test_the_duckdb_query_gives_the_rows_of_compute_features(spark, tmp_path):
    schema_name = f"t_{uuid.uuid4().hex[:8]}"
    days = synthetic_days(8)
    land_synthetic_days(spark, tmp_path / "landing", days, 600, schema_name, bulk=True)
    table = SILVER_EVENTS.name(CATALOG, schema_name)
    events = spark.table(table)
    files = silver_files(spark, table)
    assert files and all(f.endswith(".parquet") and "event_date=" in f for f in files)
    # The point-in-time rule is exercised: the generator delivers a few events late, so some
    # events of days[3]'s horizon were delivered after it and must not count for it.
    late = f"event_date <= DATE'{days[3]}' AND ingest_date > DATE'{days[3]}'"
    assert events.where(late).count() > 0
    con = duckdb.connect()
    try:
        for ds in (days[0], days[3], days[-1]):
            spark_rows = compute_features(events, ds, ds).collect()
            expected = {r["user_id"]: r.asDict() for r in spark_rows}
            relation = duckdb_features(con, files, ds)
            assert relation.columns == USER_FEATURES.names
            assert [str(t) for t in relation.types] == [
                _duckdb_type(c.type) for c in USER_FEATURES.columns
            ]
            actual = {
                row[0]: dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()
            }
            assert len(expected) > 50
            assert sorted(actual) == sorted(expected)
            # The null and zero rules are exercised too (an inactive 1-day window).
            assert any(r["avg_price_bought_1d"] is None for r in expected.values())
            problems = _differences(expected, actual)
            assert not problems, f"{ds}: {len(problems)} differences, e.g. {problems[:5]}"
    finally:
        con.close()
