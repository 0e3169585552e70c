"""Schema contracts: the declared schema of every table the jobs write, in one place.

A job builds its output DataFrame, then :func:`write_checked` (or :func:`ensure_table` plus
:func:`check_frame` for a MERGE) holds it against the contract *before* anything is written:

* the DataFrame must have exactly the contract's columns and types (order is taken from the
  contract); a missing, extra or retyped column fails with a message naming the column;
* the table, when it exists, must match the contract too. A column the table lacks is added
  only when the contract marks it ``additive`` (an explicit, reviewed schema change run as
  ``ALTER TABLE ... ADD COLUMNS``); anything else (a dropped, renamed or retyped column) is a
  breaking change and fails, naming the columns, instead of rewriting the table's schema.

Plain Python at import (no Spark import), so the contracts can be read by tests and docs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from clickstream.core.jobs import JobError
from clickstream.core.schema import EVENT_COLUMNS, identifier, table_name


class SchemaContractError(JobError):
    """A DataFrame or a table does not match its declared schema."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    comment: str = ""
    additive: bool = False  # added after the table was first created: ADD COLUMNS allowed

    def ddl(self) -> str:
        text = f"{self.name} {self.type}" + ("" if self.nullable else " NOT NULL")
        if self.comment:
            text += " COMMENT '" + self.comment.replace("'", "\\'") + "'"
        return text


@dataclass(frozen=True)
class Contract:
    """Schema, layout and description of one table ``<catalog>.<schema>.<table>``."""

    schema: str
    table: str
    columns: tuple[Column, ...]
    comment: str
    partitioned_by: tuple[str, ...] = ()
    clustered_by: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    # An informational PRIMARY KEY constraint, applied on Unity Catalog (local Delta tables
    # have no constraints); its columns must be NOT NULL.
    primary_key: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.table}: duplicate column names")
        nullable = {c.name for c in self.columns if c.nullable}
        if set(self.primary_key) & nullable:
            raise ValueError(f"{self.table}: primary key columns must be NOT NULL")
        for key in (*self.partitioned_by, *self.clustered_by, *self.primary_key):
            if key not in names:
                raise ValueError(f"{self.table}: layout column {key!r} is not a column")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def name(self, catalog: str, schema: str | None = None) -> str:
        return table_name(catalog, schema or self.schema, self.table)

    def create_sql(self, catalog: str, schema: str | None = None) -> str:
        columns = ", ".join(c.ddl() for c in self.columns)
        sql = f"CREATE TABLE IF NOT EXISTS {self.name(catalog, schema)} ({columns}) USING DELTA"
        if self.partitioned_by:
            sql += f" PARTITIONED BY ({', '.join(self.partitioned_by)})"
        if self.clustered_by:
            sql += f" CLUSTER BY ({', '.join(self.clustered_by)})"
        if self.properties:
            props = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(self.properties.items()))
            sql += f" TBLPROPERTIES ({props})"
        return sql + " COMMENT '" + self.comment.replace("'", "\\'") + "'"


def _normalise(type_name: str) -> str:
    return type_name.lower().replace(" ", "")


def _differences(actual: dict[str, str], contract: Contract, what: str) -> list[str]:
    wanted = {c.name: _normalise(c.type) for c in contract.columns}
    problems = [f"column {n!r} is missing from {what}" for n in wanted if n not in actual]
    problems += [
        f"column {n!r} is {actual[n]} in {what}, the contract says {wanted[n]}"
        for n in wanted
        if n in actual and _normalise(actual[n]) != wanted[n]
    ]
    problems += [
        f"column {n!r} of {what} is not in the contract" for n in actual if n not in wanted
    ]
    return problems


def check_frame(df, contract: Contract):
    """``df`` with the contract's columns in the contract's order; fails naming any mismatch."""
    actual = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    problems = _differences(actual, contract, "the job's output")
    if problems:
        raise SchemaContractError(
            f"{contract.schema}.{contract.table}: output breaks the schema contract: "
            + "; ".join(problems)
        )
    return df.select(*contract.names)


# What a CREATE TABLE meets when another job creates the same table at the same moment (a
# backfill running two dates of a new table at once): the other job's half-created location,
# its version 0 committed first, or the catalog entry it has just added.
CONCURRENT_CREATE_ERRORS = (
    "DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION",
    "DELTA_PROTOCOL_CHANGED",
    "DELTA_METADATA_CHANGED",
    "DELTA_CONCURRENT_WRITE",
    "TABLE_OR_VIEW_ALREADY_EXISTS",
    "TABLE_ALREADY_EXISTS",
)
CREATE_ATTEMPTS = 6  # waits 0.5, 1, 2, 4, 8 s for the other job's table: 15 s in all


def create_table(spark, contract: Contract, catalog: str, schema: str | None = None) -> bool:
    """``CREATE TABLE IF NOT EXISTS`` from the contract; False when another job created it.

    The job that loses a creation race waits until the winner's table exists and uses it
    (the caller then checks it against the contract like any existing table), instead of
    failing the run and leaving the backfill to its retry.
    """
    name = contract.name(catalog, schema)
    attempt = 0
    while True:
        try:
            spark.sql(contract.create_sql(catalog, schema))
            return True
        except Exception as error:
            attempt += 1
            concurrent = any(marker in str(error) for marker in CONCURRENT_CREATE_ERRORS)
            if not concurrent or attempt == CREATE_ATTEMPTS:
                raise
        time.sleep(0.5 * 2 ** (attempt - 1))
        if spark.catalog.tableExists(name):
            return False


def ensure_table(spark, contract: Contract, catalog: str, schema: str | None = None) -> str:
    """Create the table if missing, apply declared additive columns, refuse breaking drift."""
    schema = schema or contract.schema
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {identifier(catalog)}.{identifier(schema)}")
    name = contract.name(catalog, schema)
    if not spark.catalog.tableExists(name) and create_table(spark, contract, catalog, schema):
        return name
    actual = {f.name: f.dataType.simpleString() for f in spark.table(name).schema.fields}
    to_add = [c for c in contract.columns if c.additive and c.name not in actual]
    if to_add:
        spark.sql(f"ALTER TABLE {name} ADD COLUMNS ({', '.join(c.ddl() for c in to_add)})")
        actual.update({c.name: c.type for c in to_add})
    problems = _differences(actual, contract, f"table {name}")
    if problems:
        raise SchemaContractError(
            f"{name} does not match its schema contract (a breaking change needs a migration, "
            "not a silent rewrite): " + "; ".join(problems)
        )
    if contract.properties:
        # A table created before a property was declared gets it (e.g. the change data feed:
        # Delta records changes from the version that enables it on).
        current = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
        missing = {k: v for k, v in contract.properties.items() if current.get(k) != v}
        if missing:
            props = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(missing.items()))
            retry_on_conflict(lambda: spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ({props})"))
    if contract.primary_key and catalog != "spark_catalog":
        _ensure_primary_key(spark, contract, catalog, schema)
    return name


def primary_key_sql(contract: Contract, catalog: str, schema: str | None = None) -> str:
    """The ``ALTER TABLE ... ADD CONSTRAINT <table>_pk PRIMARY KEY (...)`` of ``contract``."""
    keys = ", ".join(identifier(k) for k in contract.primary_key)
    return (
        f"ALTER TABLE {contract.name(catalog, schema)} ADD CONSTRAINT "
        f"{identifier(contract.table + '_pk')} PRIMARY KEY ({keys})"
    )


def _ensure_primary_key(spark, contract: Contract, catalog: str, schema: str) -> None:
    """Add the primary key on Unity Catalog unless the table has one (information_schema)."""
    found = spark.sql(
        f"SELECT 1 FROM {identifier(catalog)}.information_schema.table_constraints "
        "WHERE table_schema = :schema AND table_name = :table "
        "AND constraint_type = 'PRIMARY KEY'",
        args={"schema": schema, "table": contract.table},
    ).take(1)
    if not found:
        retry_on_conflict(lambda: spark.sql(primary_key_sql(contract, catalog, schema)))


# Delta's optimistic concurrency refusing a commit because another job committed to the table
# since this write read it (a backfill writing two dates of one table at once).
CONFLICT_ERRORS = (
    "DELTA_CONCURRENT_APPEND",
    "DELTA_CONCURRENT_DELETE_READ",
    "DELTA_CONCURRENT_DELETE_DELETE",
    "DELTA_CONCURRENT_TRANSACTION",
    "DELTA_CONCURRENT_WRITE",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)
CONFLICT_ATTEMPTS = 5

T = TypeVar("T")


def retry_on_conflict(write: Callable[[], T]) -> T:
    """``write()``, done again (up to :data:`CONFLICT_ATTEMPTS` times) when a concurrent
    commit conflicts with it.

    Every job replaces or merges only its own date's rows, so two dates written at once never
    need each other's rows; Delta still refuses the second commit when it cannot prove that
    (a table not partitioned by the date, MERGEs of two days whose late events touch the same
    event date). The writes are idempotent, so doing one again on the new version of the table
    gives exactly what it would have given alone.
    """
    attempt = 0
    while True:
        try:
            return write()
        except Exception as error:
            attempt += 1
            conflict = any(marker in str(error) for marker in CONFLICT_ERRORS)
            if not conflict or attempt == CONFLICT_ATTEMPTS:
                raise
        time.sleep(attempt * random.uniform(0.5, 1.5))


def table_version(spark, name: str) -> int:
    """The current Delta version of ``name`` (what lineage tags and summaries record)."""
    return int(spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()["version"])


def write_partition(
    spark, df, contract: Contract, catalog: str, predicate: str, schema: str | None = None
) -> str:
    """Check ``df`` and replace the rows matching ``predicate`` (Delta ``replaceWhere``)."""
    checked = check_frame(df, contract)
    name = ensure_table(spark, contract, catalog, schema)
    retry_on_conflict(
        lambda: (
            checked.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate)
            .saveAsTable(name)
        )
    )
    return name


def _event_columns(nullable: frozenset[str]) -> tuple[Column, ...]:
    return tuple(Column(n, t, nullable=n in nullable) for n, t in EVENT_COLUMNS)


_OPTIONAL = frozenset({"category_code", "brand"})

BRONZE_EVENTS = Contract(
    schema="bronze",
    table="events",
    comment="REES46 click-stream events, typed, source-aligned (duplicates kept)",
    columns=(
        *_event_columns(_OPTIONAL),
        Column("event_date", "date", False, "UTC date of event_time"),
        Column("raw_record", "string", False, "the line as delivered"),
        Column("source_file", "string", False),
        Column("ingested_at", "timestamp", False, "end of the logical date, not the wall clock"),
        Column("ingest_date", "date", False, "logical date of the file that delivered the row"),
    ),
    partitioned_by=("ingest_date",),
)

BRONZE_QUARANTINE = Contract(
    schema="bronze",
    table="events_quarantine",
    comment="raw lines that could not be typed, with the first failing reason",
    columns=(
        Column("raw_record", "string", False),
        Column("raw_bytes", "binary", False, "exact bytes of the line"),
        Column("source_file", "string", False),
        Column("reason", "string", False),
        Column("ingested_at", "timestamp", False),
        Column("ingest_date", "date", False),
    ),
    partitioned_by=("ingest_date",),
)

SILVER_EVENTS = Contract(
    schema="silver",
    table="events",
    comment="click-stream events, deduplicated on event_id, partitioned by event date",
    columns=(
        Column("event_id", "string", False, "sha2 of the nine source fields: the event key"),
        *_event_columns(_OPTIONAL),
        Column("category_l1", "string", True, "first level of category_code"),
        Column("event_date", "date", False),
        Column("ingest_date", "date", False, "earliest logical date that delivered the event"),
        Column("source_file", "string", False),
    ),
    partitioned_by=("event_date",),
    # The change data feed tells the feature job which event dates changed since its last
    # run, so it refreshes only those dates of silver.user_daily_activity.
    properties={"delta.enableChangeDataFeed": "true"},
)

USER_DAILY_ACTIVITY = Contract(
    schema="silver",
    table="user_daily_activity",
    comment="silver.events reduced to one row per (user, event date, ingest date): the "
    "additive parts of every feature, kept up to date from silver's change data feed by the "
    "feature job",
    columns=(
        Column("user_id", "bigint", False),
        Column("event_date", "date", False),
        Column("ingest_date", "date", False),
        Column("views", "bigint", False),
        Column("carts", "bigint", False),
        Column("removals", "bigint", False),
        Column("purchases", "bigint", False),
        Column("spend", "decimal(22,2)", True, "sum of purchase prices (null without purchases)"),
        Column("price_viewed", "decimal(22,2)", True, "sum of viewed prices (null without views)"),
        Column("products", "array<bigint>", False, "distinct product ids"),
        Column("categories", "array<bigint>", False, "distinct category ids"),
        Column("brands", "array<string>", False, "distinct non-empty brands"),
        Column("sessions", "array<string>", False, "distinct user sessions"),
    ),
    partitioned_by=("event_date",),
)

WINDOWS: tuple[int, ...] = (1, 7, 30)
# (name, type, description) of the per-window features; the column is f"{name}_{w}d".
WINDOW_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("views", "bigint", "view events"),
    ("carts", "bigint", "cart events"),
    ("removals", "bigint", "remove_from_cart events"),
    ("purchases", "bigint", "purchase events"),
    ("spend", "decimal(18,2)", "sum of purchase prices"),
    ("distinct_products", "int", "distinct products with any event"),
    ("distinct_categories", "int", "distinct category ids with any event"),
    ("distinct_brands", "int", "distinct non-empty brands with any event"),
    ("sessions", "int", "distinct sessions"),
    ("view_to_cart", "double", "carts / views (null without views)"),
    ("cart_to_purchase", "double", "purchases / carts (null without carts)"),
    ("avg_price_viewed", "double", "mean price of viewed products (null without views)"),
    ("avg_price_bought", "double", "mean price of purchases (null without purchases)"),
)
RECENCY_FEATURES: tuple[tuple[str, str], ...] = (
    ("days_since_last_view", "days from the last view to the feature date (null: none in 30d)"),
    ("days_since_last_cart", "days from the last cart to the feature date (null: none in 30d)"),
    ("days_since_last_purchase", "days from the last purchase (null: none in 30d)"),
    ("tenure_days", "days from the first event in the 30-day horizon to the feature date"),
)
FEATURE_COLUMNS: tuple[str, ...] = (
    *(f"{name}_{w}d" for w in WINDOWS for name, _, _ in WINDOW_FEATURES),
    *(name for name, _ in RECENCY_FEATURES),
)


def _feature_columns() -> tuple[Column, ...]:
    # Counts and spend are 0 for an inactive window, never null; ratios and means are null
    # when their denominator is 0, and so is a recency with no such event in the horizon.
    windowed = tuple(
        Column(f"{name}_{w}d", kind, kind == "double", f"{doc}, {w}d")
        for w in WINDOWS
        for name, kind, doc in WINDOW_FEATURES
    )
    recency = tuple(Column(n, "int", n != "tenure_days", doc) for n, doc in RECENCY_FEATURES)
    return windowed + recency


USER_FEATURES = Contract(
    schema="silver",
    table="user_features",
    comment="offline feature table (ARDS): one row per user active in the 30 days up to "
    "feature_date, from events ingested by the end of feature_date (point in time)",
    columns=(
        Column("user_id", "bigint", False),
        Column("feature_date", "date", False, "features as of the end of this date (UTC)"),
        *_feature_columns(),
    ),
    partitioned_by=("feature_date",),
)

USER_LABELS = Contract(
    schema="silver",
    table="user_labels",
    comment="closed labels of the offline feature rows: purchased within the horizon after "
    "feature_date; written once the horizon has passed",
    columns=(
        Column("user_id", "bigint", False),
        Column("feature_date", "date", False),
        Column("horizon_days", "int", False),
        Column("purchased", "int", False, "1 if the user bought in (feature_date, +horizon]"),
        Column("purchases", "bigint", False, "purchase events in the horizon"),
        Column("labelled_on", "date", False, "logical date of the run that closed the label"),
    ),
    partitioned_by=("feature_date",),
)

ONLINE_FEATURES = Contract(
    schema="gold",
    table="user_features_online",
    comment="online feature table (MRDS): the latest offline feature row of every user, keyed "
    "by user_id for point lookups",
    columns=(
        Column("user_id", "bigint", False),
        Column("feature_date", "date", False),
        *_feature_columns(),
        Column("updated_at", "timestamp", False, "data-interval end of the run that wrote it"),
    ),
    clustered_by=("user_id",),
    # What a triggered synced table (Databricks online table / Lakebase) reads: the change data
    # feed for incremental syncs, and the primary key (Unity Catalog only) for its lookups.
    properties={"delta.enableChangeDataFeed": "true"},
    primary_key=("user_id",),
)

_LINEAGE = (
    Column("model_name", "string", False),
    Column("model_version", "string", False),
    Column("model_alias", "string", False, "the alias resolved when scoring (champion)"),
    Column("feature_date", "date", False, "feature date of the input row"),
    Column("logical_date", "date", False, "logical date of the run"),
    Column("airflow_run_id", "string", False),
)

PROPENSITY_SCORES = Contract(
    schema="gold",
    table="propensity_scores",
    comment="purchase propensity of every active user, by score date, with model lineage",
    columns=(
        Column("user_id", "bigint", False),
        Column("score", "double", False, "P(purchase within the label horizon)"),
        *_LINEAGE,
        Column("score_date", "date", False),
    ),
    partitioned_by=("score_date",),
)

RECOMMENDATIONS = Contract(
    schema="gold",
    table="recommendations",
    comment="top products per active user (ALS), excluding recent purchases, with lineage",
    columns=(
        Column("user_id", "bigint", False),
        Column("product_id", "bigint", False),
        Column("rank", "int", False, "1 = best"),
        Column("score", "double", False),
        *_LINEAGE,
        Column("score_date", "date", False),
    ),
    partitioned_by=("score_date",),
)

JOB_RUNS = Contract(
    schema="monitoring",
    table="job_runs",
    comment="one row per Databricks run the DAGs started, from the Jobs API: state, phase "
    "durations, compute and an estimated cost (clickstream/monitoring/job_runs.py)",
    columns=(
        Column("run_id", "bigint", False, "Databricks run id: the key"),
        Column("dag_id", "string", False, "from the run name <dag_id>.<task_id> [<ds>]"),
        Column("task_id", "string", False),
        Column("logical_date", "date", False, "ds of the Airflow run"),
        Column("run_name", "string", False),
        Column("task_run_id", "bigint", True, "run id of the run's task (runs/get-output)"),
        Column("life_cycle_state", "string", False, "QUEUED .. TERMINATED, INTERNAL_ERROR"),
        Column("result_state", "string", True, "SUCCESS, FAILED, TIMEDOUT, ...; null in flight"),
        Column("state_message", "string", True),
        Column("start_time", "timestamp", False, "UTC; a queued run's submission"),
        Column("end_time", "timestamp", True, "UTC; null while in flight"),
        Column("queue_seconds", "double", False, "waiting in the queue"),
        Column("setup_seconds", "double", False, "cluster start (0 until reached)"),
        Column("execution_seconds", "double", False, "the task's code (0 until done)"),
        Column("cleanup_seconds", "double", False, "cluster teardown"),
        Column("total_seconds", "double", False, "run_duration: leaving the queue to the end"),
        Column("compute_kind", "string", False, "job_cluster, serverless, existing_cluster"),
        Column("node_type_id", "string", True, "of the workers, when the spec names it"),
        Column("driver_node_type_id", "string", True),
        Column("workers", "int", True, "fixed size or the autoscale minimum"),
        Column("max_workers", "int", True, "the autoscale maximum (= workers when fixed)"),
        Column("price_basis", "string", False, "what the estimate assumed, or why there is none"),
        Column("billable_seconds", "double", False, "setup + execution + cleanup (no queue)"),
        Column("dbu_per_hour", "double", True, "DBUs per hour of the priced compute"),
        Column("usd_per_hour", "double", True, "DBUs and VMs per hour, at the minimum size"),
        Column("usd_per_hour_max", "double", True, "... at the autoscale maximum"),
        Column("estimated_cost_usd", "double", True, "usd_per_hour x billable hours"),
        Column("estimated_cost_max_usd", "double", True, "usd_per_hour_max x billable hours"),
        Column("price_table", "string", True, "name of the price table (environment config)"),
        Column("run_page_url", "string", True),
        Column("collection_date", "date", False, "logical date of the collection that wrote it"),
        Column("airflow_run_id", "string", False, "the pipeline_monitoring run that wrote it"),
    ),
    primary_key=("run_id",),
)
