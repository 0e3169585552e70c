"""Land the raw click-stream CSV of one logical date into bronze (bad rows to quarantine).

    ingest_events.py --ds 2019-10-01 --catalog spark_catalog \
        --landing-dir /Volumes/ecom/raw/landing/events [--bronze-schema bronze]

Reads ``<landing>/<ds>/*.csv`` and ``*.csv.gz``; writes the ``ingest_date = ds`` partition of
``<catalog>.<schema>.events`` and ``<catalog>.<schema>.events_quarantine`` (``replaceWhere``,
so a rerun leaves both tables as one run would) and fails unless rows in = bronze rows +
quarantined rows.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from clickstream.ingest import (
    default_ingested_at,
    overwrite_partition,
    parse,
    read_lines,
    split_good_and_bad,
)
from clickstream.schema import identifier, parse_ds, table_name
from clickstream.volumes import local_path


class IngestError(RuntimeError):
    pass


def landing_files(landing_dir: str, ds: str) -> list[str]:
    folder = f"{landing_dir.rstrip('/')}/{ds}"
    local = local_path(folder)
    if not os.path.isdir(local):
        raise IngestError(f"no landing folder for {ds}: expected {folder}/events.csv")
    names = sorted(n for n in os.listdir(local) if n.endswith((".csv", ".csv.gz")))
    if not names:
        raise IngestError(f"no .csv or .csv.gz file for {ds} in {folder}")
    return [os.path.join(local, n) for n in names]


def ingest(spark, *, ds, catalog, landing_dir, schema="bronze", ingested_at=None) -> dict:
    ds = parse_ds(ds)
    files = landing_files(landing_dir, ds)
    bronze = table_name(catalog, schema, "events")
    quarantine = table_name(catalog, schema, "events_quarantine")
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {catalog}.{identifier(schema)}")
    lines = read_lines(spark, files).cache()
    rows_in = lines.count()
    good, bad = split_good_and_bad(parse(lines, ds, ingested_at or default_ingested_at(ds)))
    overwrite_partition(spark, good, bronze, ds)
    overwrite_partition(spark, bad, quarantine, ds)
    lines.unpersist()
    partition = F.col("ingest_date") == F.lit(ds).cast("date")
    rows_out = spark.table(bronze).where(partition).count()
    rows_quarantined = spark.table(quarantine).where(partition).count()
    counts = {"files": len(files), "rows_in": rows_in, "bronze": rows_out,
              "quarantined": rows_quarantined}  # fmt: skip
    if rows_in != rows_out + rows_quarantined:
        raise IngestError(f"rows lost for {ds}: {counts}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ds", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--landing-dir", required=True)
    parser.add_argument("--bronze-schema", default="bronze")
    parser.add_argument("--ingest-ts", type=datetime.fromisoformat, help="default: end of --ds")
    args = parser.parse_args(argv)
    spark = SparkSession.builder.getOrCreate()
    try:
        counts = ingest(
            spark, ds=args.ds, catalog=args.catalog, landing_dir=args.landing_dir,
            schema=args.bronze_schema, ingested_at=args.ingest_ts,
        )  # fmt: skip
    except (IngestError, ValueError) as error:
        print(f"ingest_events: {error}", file=sys.stderr)
        raise SystemExit(f"ingest_events failed: {error}") from None
    note = " (empty file: nothing to land)" if counts["rows_in"] == 0 else ""
    print(
        f"{args.ds}: {counts['rows_in']} rows in = {counts['bronze']} bronze + "
        f"{counts['quarantined']} quarantined, from {counts['files']} file(s){note}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
