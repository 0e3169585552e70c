"""Benchmark 13: a silver read before and after table maintenance.

Two copies of the same fragmented silver-like table (``silver.events``' contract, ``ROWS``
events of ``USERS`` users over ``DAYS`` event dates), each written as ``APPENDS`` small appends
that each add one file to every date partition (the many small files of daily MERGEs and
streaming micro-batches). One copy is then maintained (``maintain_tables``: OPTIMIZE Z-ordered
by ``user_id``, VACUUM), the other left as it is. The reads the jobs make of silver are timed on
both, the two copies taking turns, repeated:

* **window**: a week of event dates aggregated per user (the shape of the daily activity and
  the recommender's interactions);
* **users**: 50 users' events over every date, aggregated (a lookup by user: what the Z-order
  key lets Delta skip files for).

Reported: each read's time after / before maintenance, the files each read opens (Spark's scan
metric ``number of files read``), the files of the table and the maintenance's own time.
"""

from __future__ import annotations

import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.common import Comparison, Figure, local_session

CATALOG = "spark_catalog"
ROWS = 300_000
USERS = 20_000
DAYS = 30
APPENDS = 20
FIRST_DAY = date(2019, 10, 1)
LOOKUP_USERS = 50


def _events(spark, rows: int, seed: int):
    """``rows`` silver events of ``USERS`` users, spread evenly over the ``DAYS`` dates."""
    from pyspark.sql import functions as F

    from clickstream.core.contracts import SILVER_EVENTS, check_frame

    kinds = F.array(*(F.lit(k) for k in ("view", "view", "view", "cart", "purchase")))
    day = F.date_add(F.lit(FIRST_DAY.isoformat()).cast("date"), (F.col("id") % DAYS).cast("int"))
    frame = spark.range(rows).select(
        F.sha2(F.concat_ws("-", F.lit(seed), F.col("id")), 256).alias("event_id"),
        (F.to_timestamp(day) + F.make_interval(secs=F.col("id") % 86_400)).alias("event_time"),
        F.element_at(kinds, (F.abs(F.hash("id", F.lit(seed))) % 5 + 1).cast("int")).alias(
            "event_type"
        ),
        (F.abs(F.hash("id", F.lit(1))) % 5_000).cast("bigint").alias("product_id"),
        (F.abs(F.hash("id", F.lit(2))) % 300).cast("bigint").alias("category_id"),
        F.lit("electronics.phone").alias("category_code"),
        F.lit("acme").alias("brand"),
        (F.abs(F.hash("id", F.lit(3))) % 50_000 / 100).cast("decimal(12,2)").alias("price"),
        (F.abs(F.hash("id", F.lit(seed + 4))) % USERS).cast("bigint").alias("user_id"),
        F.concat(F.lit("s"), (F.col("id") % 50_000).cast("string")).alias("user_session"),
        F.lit("electronics").alias("category_l1"),
        day.alias("event_date"),
        day.alias("ingest_date"),
        F.lit("landing/bench.csv").alias("source_file"),
    )
    return check_frame(frame, SILVER_EVENTS)


def _fragmented(spark, schema: str) -> str:
    """The table, written as ``APPENDS`` appends of one file per date partition each."""
    from clickstream.core.contracts import SILVER_EVENTS, ensure_table

    name = ensure_table(spark, SILVER_EVENTS, CATALOG, schema)
    for seed in range(APPENDS):
        batch = _events(spark, ROWS // APPENDS, seed)
        batch.repartition("event_date").write.format("delta").mode("append").saveAsTable(name)
    return name


def _files(spark, name: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL {name}").first()["numFiles"])


def _window_sql(name: str) -> str:
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    return (
        f"SELECT user_id, count(*) AS events, "
        f"sum(CASE WHEN event_type = 'purchase' THEN price END) AS spend "
        f"FROM {name} WHERE event_date BETWEEN DATE'{last - timedelta(days=6)}' AND "
        f"DATE'{last}' GROUP BY user_id"
    )


def _users_sql(name: str) -> str:
    users = ", ".join(str(u * (USERS // LOOKUP_USERS)) for u in range(LOOKUP_USERS))
    return (
        f"SELECT user_id, event_date, count(*) AS events FROM {name} "
        f"WHERE user_id IN ({users}) GROUP BY user_id, event_date"
    )


READS = {"window": _window_sql, "users": _users_sql}


def _read(spark, sql: str) -> None:
    """The read, run to the end without bringing its rows to the driver."""
    spark.sql(sql).write.format("noop").mode("overwrite").save()


def _files_read(spark, sql: str) -> int:
    """The files the read's scans open (``numFiles`` of each file scan, after partition
    pruning and Delta's data skipping); run once apart, with adaptive execution off so that the
    scans are the plan's leaves."""
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        frame = spark.sql(sql)
        frame.collect()
        leaves = frame._jdf.queryExecution().executedPlan().collectLeaves().iterator()
        files = 0
        while leaves.hasNext():
            metric = leaves.next().metrics().get("numFiles")
            files += int(metric.get().value()) if metric.isDefined() else 0
        return files
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", "true")


def run(repeats: int = 5) -> tuple[list, list]:
    from clickstream.maintenance.keys import TABLES
    from clickstream.maintenance.tables import maintain_tables

    repeats = max(2, repeats)
    with tempfile.TemporaryDirectory(prefix="bench-maintenance-") as tmp:
        spark = local_session(Path(tmp) / "state")
        try:
            print(f"  two copies: {ROWS} events, {DAYS} dates, {APPENDS} appends", flush=True)
            before = _fragmented(spark, "before")
            after = _fragmented(spark, "after")
            files_before = _files(spark, after)
            started = time.perf_counter()
            [events] = [k for k in TABLES if (k.schema, k.table) == ("silver", "events")]
            maintain_tables(
                spark,
                catalog=CATALOG,
                retention=timedelta(0),
                pins=[],
                margin=timedelta(0),
                schemas={"silver": "after"},
                tables=[events],
                log=lambda line: print("  " + line, flush=True),
            )
            maintenance = Figure("maintenance of the table (OPTIMIZE + VACUUM)", "s")
            maintenance.samples.append(time.perf_counter() - started)
            files_after = _files(spark, after)
            opened = {
                (kind, copy): _files_read(spark, sql(table))
                for kind, sql in READS.items()
                for copy, table in (("before", before), ("after", after))
            }
            figures = {
                (kind, copy): Figure(f"silver read '{kind}', {copy} maintenance", "s")
                for kind in READS
                for copy in ("before", "after")
            }
            for i in range(repeats):
                order = [("before", before), ("after", after)]
                for copy, table in order if i % 2 == 0 else order[::-1]:
                    for kind, sql in READS.items():
                        started = time.perf_counter()
                        _read(spark, sql(table))
                        figures[kind, copy].samples.append(time.perf_counter() - started)
                latest = {f"{k}/{c}": round(f.samples[-1], 2) for (k, c), f in figures.items()}
                print("  repeat", i + 1, latest, flush=True)
        finally:
            spark.stop()
    descriptions = {
        "window": "a week of dates aggregated per user",
        "users": f"{LOOKUP_USERS} users over every date",
    }
    comparisons = []
    for kind, description in descriptions.items():
        comparison = Comparison(
            benchmark="13. table maintenance",
            description=f"silver read ({description}), after / before OPTIMIZE + VACUUM",
            numerator=figures[kind, "after"],
            denominator=figures[kind, "before"],
            target="< 1x",
            notes=f"table files {files_before} -> {files_after}; files read "
            f"{opened[kind, 'before']} -> {opened[kind, 'after']}; {ROWS} rows, {DAYS} dates",
        )
        comparison.meets_target = comparison.ratio < 1
        comparisons.append(comparison)
    return comparisons, [*figures.values(), maintenance]
