"""Split a published REES46 monthly file into the daily landing layout the DAGs ingest.

    split_monthly_file.py --input /Volumes/ecom/raw/incoming/2019-Oct.csv.gz \
        --landing-dir /Volumes/ecom/raw/landing/events

The public files are one CSV per month (``2019-Oct.csv``, several GB). Each line goes to
``<landing>/<YYYY-MM-DD>/rees46-<part>.csv`` by the date its ``event_time`` starts with, so a
day's ingest reads only that day. Lines without a leading date cannot be assigned to a day;
they go to ``<landing>/_unassigned/`` and are counted, never dropped.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import uuid
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from clickstream.core.jobs import parse_arguments
from clickstream.core.schema import HEADER
from clickstream.core.volumes import local_path

UNASSIGNED = "_unassigned"


def split(spark: SparkSession, source: str, landing: Path) -> dict[str, int]:
    lines = spark.read.text(source).where(F.col("value") != HEADER)
    day = F.regexp_extract("value", r"^(\d{4}-\d{2}-\d{2}) ", 1)
    dated = lines.withColumn("day", F.when(day != "", day).otherwise(F.lit(UNASSIGNED)))
    staging = landing / f"_staging-{uuid.uuid4().hex[:8]}"
    dated.write.partitionBy("day").option("compression", "none").text(str(staging))
    counts: dict[str, int] = {}
    for folder in sorted(staging.glob("day=*")):
        target = landing / folder.name.removeprefix("day=")
        target.mkdir(parents=True, exist_ok=True)
        for part in sorted(folder.glob("part-*")):
            destination = target / f"rees46-{part.name.split('-')[1]}.csv"
            shutil.move(str(part), destination)
            counts[target.name] = counts.get(target.name, 0) + sum(1 for _ in destination.open())
    shutil.rmtree(staging)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, help="a monthly REES46 file (.csv or .csv.gz)")
    parser.add_argument("--landing-dir", required=True)
    args = parse_arguments(parser, argv, "split_monthly_file")  # paths checked
    source = local_path(args.input)
    if not Path(source).exists():
        raise SystemExit(f"split_monthly_file: {args.input} does not exist")
    counts = split(SparkSession.builder.getOrCreate(), source, Path(local_path(args.landing_dir)))
    for day, n in sorted(counts.items()):
        print(f"{day}: {n} lines")
    if UNASSIGNED in counts:
        print(f"{counts[UNASSIGNED]} lines without a date are in {args.landing_dir}/{UNASSIGNED}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
