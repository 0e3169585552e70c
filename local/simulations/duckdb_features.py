"""A single-node reference for the daily feature computation: the same rows in DuckDB SQL.

The same computation as ``clickstream.pipeline.features.compute_features`` for one feature date
F, written as one DuckDB SQL query over the same silver data: every column of
``silver.user_features`` (the 1/7/30-day counts, spend, distinct counts and sessions, the
ratios and means with their null-without-denominator rule, ``days_since_*`` and the tenure),
from the events with ``event_date`` in ``[F-29, F]`` delivered by the end of F
(``ingest_date <= F``). ``tests/local/simulations/test_duckdb_features.py`` checks that the
query's rows equal ``compute_features``' rows, column by column, on data that went through the
real ingest and silver jobs, so the reference is provably the same computation; benchmark 8
(``bench/duckdb_reference.py``) times the two side by side.

**Same data.** DuckDB reads the Parquet files of the silver Delta table's current version:
the file list comes from Delta itself (``DeltaTable.forName(...).toDF().inputFiles()``), and the
partition column ``event_date``, which Delta keeps in the path, is read with hive
partitioning (DuckDB's own ``delta_scan`` needs an extension downloaded at run time). Reading
the files directly is only right for a table without deletion vectors or column mapping, so
:func:`silver_files` refuses a table that has either.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

# (name, DuckDB aggregate over the events of the window, where ``{w}`` is the window's
# condition). The counts are 0 for an inactive window, never null, like the Spark job's.
_WINDOW_AGGREGATES: tuple[tuple[str, str], ...] = (
    ("views", "count(*) FILTER (WHERE event_type = 'view' AND {w})"),
    ("carts", "count(*) FILTER (WHERE event_type = 'cart' AND {w})"),
    ("removals", "count(*) FILTER (WHERE event_type = 'remove_from_cart' AND {w})"),
    ("purchases", "count(*) FILTER (WHERE event_type = 'purchase' AND {w})"),
    (
        "spend",
        "CAST(coalesce(sum(price) FILTER (WHERE event_type = 'purchase' AND {w}), 0)"
        " AS DECIMAL(18, 2))",
    ),
    ("_price_viewed", "coalesce(sum(price) FILTER (WHERE event_type = 'view' AND {w}), 0)"),
    ("distinct_products", "CAST(count(DISTINCT product_id) FILTER (WHERE {w}) AS INTEGER)"),
    ("distinct_categories", "CAST(count(DISTINCT category_id) FILTER (WHERE {w}) AS INTEGER)"),
    ("distinct_brands", "CAST(count(DISTINCT brand) FILTER (WHERE {w}) AS INTEGER)"),
    ("sessions", "CAST(count(DISTINCT user_session) FILTER (WHERE {w}) AS INTEGER)"),
)


def _ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator`` as a double, null when the denominator is 0."""
    return f"CASE WHEN {denominator} > 0 THEN CAST({numerator} AS DOUBLE) / {denominator} END"


# The per-window output columns, in the contract's order (WINDOW_FEATURES).
def _window_columns(w: int) -> list[str]:
    def c(name: str) -> str:
        return f"{name}_{w}d"

    return [
        c("views"),
        c("carts"),
        c("removals"),
        c("purchases"),
        c("spend"),
        c("distinct_products"),
        c("distinct_categories"),
        c("distinct_brands"),
        c("sessions"),
        f"{_ratio(c('carts'), c('views'))} AS {c('view_to_cart')}",
        f"{_ratio(c('purchases'), c('carts'))} AS {c('cart_to_purchase')}",
        f"{_ratio(c('_price_viewed'), c('views'))} AS {c('avg_price_viewed')}",
        f"{_ratio(c('spend'), c('purchases'))} AS {c('avg_price_bought')}",
    ]


def sql_string(value: str) -> str:
    """``value`` as a DuckDB SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def parquet_source(files: list[str]) -> str:
    """The ``read_parquet`` of the silver files, with ``event_date`` from the hive path."""
    if not files:
        raise ValueError("the silver table has no data files")
    listed = ", ".join(sql_string(f) for f in files)
    options = "hive_partitioning = true, hive_types = {'event_date': DATE}"
    return f"read_parquet([{listed}], {options})"


def feature_sql(source: str, feature_date: str) -> str:
    """The feature rows of ``feature_date`` from the silver events in ``source`` (SQL)."""
    from clickstream.core.contracts import RECENCY_FEATURES, WINDOWS
    from clickstream.core.schema import parse_ds
    from clickstream.pipeline.activity import HORIZON_DAYS

    f = date.fromisoformat(parse_ds(feature_date))
    first = f - timedelta(days=HORIZON_DAYS - 1)
    aggregates = [
        f"{template.format(w=f'age < {w}')} AS {name}_{w}d"
        for w in WINDOWS
        for name, template in _WINDOW_AGGREGATES
    ]
    recency = [
        "CAST(min(age) FILTER (WHERE event_type = 'view') AS INTEGER) AS days_since_last_view",
        "CAST(min(age) FILTER (WHERE event_type = 'cart') AS INTEGER) AS days_since_last_cart",
        "CAST(min(age) FILTER (WHERE event_type = 'purchase') AS INTEGER)"
        " AS days_since_last_purchase",
        "CAST(max(age) AS INTEGER) AS tenure_days",
    ]
    columns = [column for w in WINDOWS for column in _window_columns(w)]
    recency_names = [name for name, _ in RECENCY_FEATURES]
    sep = ",\n    "
    return f"""
WITH scope AS (
  -- point in time: the 30-day horizon of F, and only what was delivered by the end of F
  SELECT user_id, event_type, product_id, category_id, brand, user_session, price,
         date_diff('day', event_date, DATE '{f}') AS age
  FROM {source}
  WHERE event_date BETWEEN DATE '{first}' AND DATE '{f}' AND ingest_date <= DATE '{f}'
),
aggregated AS (
  SELECT user_id,
    {sep.join(aggregates + recency)}
  FROM scope
  GROUP BY user_id
)
SELECT CAST(user_id AS BIGINT) AS user_id, DATE '{f}' AS feature_date,
    {sep.join(columns + recency_names)}
FROM aggregated
"""


def silver_files(spark, table: str) -> list[str]:
    """Local paths of the Parquet files of ``table``'s current Delta version.

    Refuses a table whose files alone do not give its rows: deletion vectors (rows deleted
    outside the files) or column mapping (physical column names differ from the schema).
    """
    from delta.tables import DeltaTable

    delta = DeltaTable.forName(spark, table)
    detail = delta.detail().first()
    properties = detail["properties"] or {}
    features = set(detail["tableFeatures"] or ())
    if "deletionVectors" in features or properties.get("delta.enableDeletionVectors") == "true":
        raise ValueError(f"{table} can have deletion vectors: its Parquet files are not its rows")
    if properties.get("delta.columnMapping.mode", "none") != "none":
        raise ValueError(f"{table} uses column mapping: its Parquet columns are not its schema")
    return sorted(_local_path(uri) for uri in delta.toDF().inputFiles())


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"not a local file: {uri}")
    return unquote(parsed.path)


def duckdb_features(con, files: list[str], feature_date: str):
    """The feature rows of ``feature_date`` from ``files`` as a DuckDB relation."""
    return con.sql(feature_sql(parquet_source(files), feature_date))


def write_duckdb_features(con, files: list[str], feature_date: str, out: Path) -> None:
    """Compute the feature rows of ``feature_date`` and write them to the Parquet file ``out``."""
    query = feature_sql(parquet_source(files), feature_date)
    con.execute(f"COPY ({query}) TO {sql_string(str(out))} (FORMAT parquet)").fetchall()
