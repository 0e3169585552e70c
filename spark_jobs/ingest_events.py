"""Land the raw click-stream CSV of one logical date into bronze (bad rows to quarantine).

    ingest_events.py --ds 2019-10-01 --catalog spark_catalog \
        --landing-dir /Volumes/ecom/raw/landing/events \
        [--bronze-schema bronze] [--ingest-ts 2019-10-02T00:00:00+00:00]

Reads ``<landing>/<ds>/*.csv`` and ``*.csv.gz``; replaces the ``ingest_date = ds`` partition of
``<catalog>.<bronze-schema>.events`` and ``<catalog>.<bronze-schema>.events_quarantine``
(created if missing), prints rows in, bronze rows and quarantined rows (by reason), and exits
non-zero unless rows in = bronze + quarantined. The quarantine reasons and the parsing rules
are documented in ``clickstream/pipeline/landing.py``. ``--ingest-ts`` (default: the end of
``ds``, UTC) is stored as ``ingested_at``; pass the run's data-interval end to record it, never
the wall clock, so that a rerun writes identical rows.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments
from clickstream.core.jobs import parser as job_parser
from clickstream.pipeline.ingest import ingest


def _parser() -> argparse.ArgumentParser:
    parser = job_parser(__doc__)
    parser.add_argument("--ds", required=True, help="logical date, YYYY-MM-DD")
    parser.add_argument("--catalog", required=True, help="spark_catalog locally, a UC catalog")
    parser.add_argument("--landing-dir", required=True, help="folder of the <ds>/ folders")
    parser.add_argument("--bronze-schema", default="bronze")
    parser.add_argument("--ingest-ts", help="ISO timestamp stored as ingested_at")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(_parser(), argv, "ingest_events")
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("ingest_events"):
        ingested_at = datetime.fromisoformat(args.ingest_ts) if args.ingest_ts else None
        counts = ingest(
            spark,
            ds=args.ds,
            catalog=args.catalog,
            landing_dir=args.landing_dir,
            schema=args.bronze_schema,
            ingested_at=ingested_at,
        )
    print(f"{args.ds}: {counts['files']} file(s) read")
    print(f"{args.ds}: rows in      {counts['rows_in']}")
    print(f"{args.ds}: bronze       {counts['bronze']}")
    print(f"{args.ds}: quarantined  {counts['quarantined']}")
    for reason, n in counts["reasons"].items():
        print(f"{args.ds}:   {reason}: {n}")
    if counts["rows_in"] == 0:
        print(f"{args.ds}: note: the file(s) hold no rows (empty or header only); nothing landed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
