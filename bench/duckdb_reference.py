"""Benchmark 8: a single-node speed reference for the daily feature computation.

The same computation as ``clickstream.features.compute_features`` for one feature date F,
written as one DuckDB SQL query over the same silver data: every column of
``silver.user_features`` (the 1/7/30-day counts, spend, distinct counts and sessions, the
ratios and means with their null-without-denominator rule, ``days_since_*`` and the tenure),
from the events with ``event_date`` in ``[F-29, F]`` delivered by the end of F
(``ingest_date <= F``). ``tests/spark_jobs/test_duckdb_reference.py`` checks that the query's
rows equal ``compute_features``' rows, column by column, on data that went through the real
ingest and silver jobs, so the reference is provably the same computation.

**Same data.** DuckDB reads the Parquet files of the silver Delta table's current version:
the file list comes from Delta itself (``DeltaTable.forName(...).toDF().inputFiles()``), and the
partition column ``event_date``, which Delta keeps in the path, is read with hive
partitioning (DuckDB's own ``delta_scan`` needs an extension downloaded at run time). Reading
the files directly is only right for a table without deletion vectors or column mapping, so
:func:`silver_files` refuses a table that has either.

**Timing.** At 1x and 16x the events per day of benchmark 3 (20,000 and 320,000), over 31 days
of history (the 30-day window of the last date is full), the daily job of the last date is timed
side by side with DuckDB, alternating, ``repeats`` times, after one warm-up each:

* ours: the daily job's feature computation for ``[ds, ds]`` from silver's events
  (``compute_features``: the horizon reduced to daily activity, fanned out, aggregated), with
  the contract check and the Delta ``replaceWhere`` write of the date's rows, in the warm local
  SparkSession. Not ``build_features`` itself, which reads the kept daily activity
  (``silver.user_daily_activity``) instead of the events: DuckDB computes from the events, so
  both do the same work;
* DuckDB: the query over the table's Parquet files, its result written to a Parquet file, in
  one in-memory DuckDB connection (the file list is resolved once per volume, outside the
  timing: the table does not change between repeats).

Both run on the same two cores. Target: ours / DuckDB <= 3x at 16x (Spark's fixed cost per job
weighs less as data grows; on Databricks the same code scales out, which DuckDB cannot).
"""

from __future__ import annotations

import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

from bench.common import Comparison, Figure

CATALOG = "spark_catalog"
EVENTS_PER_DAY = 20000  # benchmark 3's 1x volume
FACTORS = (1, 16)
HISTORY_DAYS = 31  # the last date's 30-day window is full, and one day lies outside it
TARGET = 3.0  # ours / DuckDB at 16x

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


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def parquet_source(files: list[str]) -> str:
    """The ``read_parquet`` of the silver files, with ``event_date`` from the hive path."""
    if not files:
        raise ValueError("the silver table has no data files")
    listed = ", ".join(_sql_string(f) for f in files)
    options = "hive_partitioning = true, hive_types = {'event_date': DATE}"
    return f"read_parquet([{listed}], {options})"


def feature_sql(source: str, feature_date: str) -> str:
    """The feature rows of ``feature_date`` from the silver events in ``source`` (SQL)."""
    from clickstream.core.contracts import RECENCY_FEATURES, WINDOWS
    from clickstream.core.schema import parse_ds
    from clickstream.pipeline.features import HORIZON_DAYS

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
    con.execute(f"COPY ({query}) TO {_sql_string(str(out))} (FORMAT parquet)").fetchall()


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def side_by_side(spark, root: Path, factor: int, repeats: int) -> tuple[Figure, Figure, int]:
    """Land ``HISTORY_DAYS`` days at ``factor``x, then time both on the last date."""
    import duckdb

    from bench.feature_pipeline import START, _days, _land, write_features_from_events
    from clickstream.core.contracts import SILVER_EVENTS

    volume = EVENTS_PER_DAY * factor
    schema = f"duck{factor}"
    days = _days(HISTORY_DAYS, START)
    print(f"  {factor}x: landing {len(days)} days of {volume} events", flush=True)
    # One range, as a first load of history: 31 days at 16x day by day would be most of the run.
    _land(spark, root / f"landing{factor}", days, volume, schema, bulk=True)
    ds = days[-1]
    files = silver_files(spark, SILVER_EVENTS.name(CATALOG, schema))
    out = root / f"duckdb_features_{factor}x.parquet"
    con = duckdb.connect()

    def ours() -> None:
        # The features computed from silver's events, as DuckDB does: without the kept daily
        # activity that the daily job reads (benchmark 2 measures that one).
        write_features_from_events(spark, schema, ds, ds)

    def reference() -> None:
        write_duckdb_features(con, files, ds, out)

    label = f"at {factor}x ({volume} events/day, {HISTORY_DAYS} days)"
    spark_figure = Figure(f"daily feature job (Spark) {label}", "s")
    duck_figure = Figure(f"same features in DuckDB {label}", "s")
    try:
        ours()  # warm-up: JIT, caches, table metadata; and the feature table exists
        reference()
        for i in range(repeats):
            spark_figure.samples.append(_timed(ours))
            duck_figure.samples.append(_timed(reference))
            print(
                f"  {factor}x repeat {i + 1}: spark {spark_figure.samples[-1]:.2f} s, "
                f"duckdb {duck_figure.samples[-1]:.2f} s",
                flush=True,
            )
        rows = con.sql(f"SELECT count(*) FROM read_parquet({_sql_string(str(out))})").fetchall()
    finally:
        con.close()
    return spark_figure, duck_figure, rows[0][0]


def run(repeats: int = 3, factors: tuple[int, ...] = FACTORS) -> tuple[list, list]:
    from bench.feature_pipeline import _session

    repeats = max(1, min(repeats, 3))  # landing 31 days at 16x is the long part
    comparisons, figures = [], []
    with tempfile.TemporaryDirectory(prefix="bench-duckdb-") as tmp:
        root = Path(tmp)
        spark = _session(root / "state")
        try:
            for factor in factors:
                ours, reference, rows = side_by_side(spark, root, factor, repeats)
                comparison = Comparison(
                    benchmark="8. DuckDB reference",
                    description=f"daily feature job, Spark / DuckDB at {factor}x",
                    numerator=ours,
                    denominator=reference,
                    target=f"<= {TARGET:g}x at 16x" if factor == 16 else "-",
                    notes=f"{rows} feature rows; Spark: compute_features [ds, ds] from silver "
                    "(Delta write); DuckDB: same SQL rows to Parquet",
                )
                comparison.meets_target = comparison.ratio <= TARGET if factor == 16 else None
                comparisons.append(comparison)
                figures += [ours, reference]
        finally:
            spark.stop()
    return comparisons, figures
