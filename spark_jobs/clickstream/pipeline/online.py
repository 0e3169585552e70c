"""The online feature table ``gold.user_features_online`` (Model Ready Data Set) and its skew check.

**Publish.** The feature rows of one date are MERGEd on ``user_id``: a user's row is replaced
only by a row of the same or a later feature date, so the table always holds the latest row of
every user, whatever order dates are published in, and a rerun rewrites identical values.
``updated_at`` is the run's data-interval end (``--run-ts``), never the wall clock.

The table is liquid-clustered by ``user_id`` (point lookups skip all but one file after
``OPTIMIZE``, which the publish job runs). On Databricks the same table is synced to a
low-latency store (an online table / Lakebase synced table) when the environment's
``online_store`` is set; see docs/deployment.md.

**Skew check.** For the published date, every offline row must be in the online table with the
same feature date and bit-identical feature values (null-safe). A mismatch fails the task with
the columns that differ and a few example users.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    FEATURE_COLUMNS,
    ONLINE_FEATURES,
    USER_FEATURES,
    check_frame,
    ensure_table,
    retry_on_conflict,
)
from clickstream.core.jobs import JobError
from clickstream.core.schema import parse_ds


class FeatureSkewError(JobError):
    """Online and offline feature values differ for the same users and date."""


def online_rows(features: DataFrame, ds: str, run_ts: str) -> DataFrame:
    return features.where(F.col("feature_date") == F.lit(parse_ds(ds)).cast("date")).withColumn(
        "updated_at", F.lit(run_ts).cast("timestamp")
    )


def publish_online(
    spark: SparkSession,
    *,
    ds: str,
    run_ts: str,
    catalog: str,
    silver_schema: str = "silver",
    gold_schema: str = "gold",
    optimize: bool = True,
) -> str:
    """MERGE the feature rows of ``ds`` into the online table; returns its name."""
    from delta.tables import DeltaTable

    features = spark.table(USER_FEATURES.name(catalog, silver_schema))
    rows = check_frame(online_rows(features, ds, run_ts), ONLINE_FEATURES)
    table = ensure_table(spark, ONLINE_FEATURES, catalog, gold_schema)
    retry_on_conflict(
        lambda: (
            DeltaTable.forName(spark, table)
            .alias("t")
            .merge(rows.alias("s"), "t.user_id = s.user_id")
            .whenMatchedUpdateAll(condition="s.feature_date >= t.feature_date")
            .whenNotMatchedInsertAll()
            .execute()
        )
    )
    if optimize:
        retry_on_conflict(lambda: spark.sql(f"OPTIMIZE {table}"))
    return table


def skew(offline: DataFrame, online: DataFrame, ds: str) -> tuple[int, dict[str, list[int]]]:
    """(offline rows checked, {column: example user ids}) for the rows of ``ds`` that differ.

    A user whose online row holds a *later* feature date was superseded by a later publish
    (a backfill behind the live schedule) and is not compared. The pseudo-column
    ``feature_date`` reports users whose online row is missing or older than ``ds``.
    """
    day = F.lit(parse_ds(ds)).cast("date")
    left = offline.where(F.col("feature_date") == day).alias("off")
    right = online.alias("on")
    joined = left.join(right, F.col("off.user_id") == F.col("on.user_id"), how="left")
    same_date = F.col("on.feature_date") == day
    checks = {"feature_date": F.coalesce(F.col("on.feature_date") < day, F.lit(True))}
    checks |= {
        c: same_date & ~F.col(f"off.{c}").eqNullSafe(F.col(f"on.{c}")) for c in FEATURE_COLUMNS
    }
    flagged = joined.select(
        F.col("off.user_id").alias("user_id"),
        *(F.when(cond, F.col("off.user_id")).alias(name) for name, cond in checks.items()),
    )
    examples = flagged.agg(
        F.count("*").alias("_rows"),
        *(F.slice(F.sort_array(F.collect_list(name)), 1, 5).alias(name) for name in checks),
    ).first()
    mismatches = {n: list(examples[n]) for n in checks if examples[n]}
    return int(examples["_rows"]), mismatches


def check_skew(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    silver_schema: str = "silver",
    gold_schema: str = "gold",
) -> int:
    """Fail with :class:`FeatureSkewError` unless online equals offline for ``ds``."""
    offline = spark.table(USER_FEATURES.name(catalog, silver_schema))
    online = spark.table(ONLINE_FEATURES.name(catalog, gold_schema))
    checked, mismatches = skew(offline, online, ds)
    if mismatches:
        details = "; ".join(f"{c} (e.g. users {users})" for c, users in mismatches.items())
        raise FeatureSkewError(
            f"online/offline skew for {ds}: {len(mismatches)} column(s) differ over "
            f"{checked} offline rows: {details}"
        )
    return checked
