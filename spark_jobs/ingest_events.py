"""Land the raw click-stream CSV into bronze (bad rows to quarantine), exactly once per file.

    ingest_events.py --ds 2019-10-01 --catalog spark_catalog \
        --landing-dir /Volumes/ecom/raw/landing/events \
        [--checkpoint /Volumes/ecom/raw/checkpoints/ingest_events] \
        [--source files|autoloader] [--trigger available-now|"every 1 minute"] \
        [--bronze-schema bronze] [--ingest-ts 2019-10-02T00:00:00+00:00]

**Streaming** (``--checkpoint``, what the daily DAG runs): reads the landing folder as a stream
(``clickstream/pipeline/stream.py``: the Spark file source, or Auto Loader with ``--source
autoloader``) and appends the files that arrived since the last trigger, of any date, each
once; then settles ``--ds``: when its folder's files are all in bronze as they are now, nothing
more is written, else (a corrected re-delivery, a removed file) the date is re-ingested whole;
``--try-number`` 2 or more (a retried or cleared task) re-ingests the date in any case.
``--trigger "every 1 minute"`` keeps the stream running (no ``--ds`` needed; stop it to end);
``--trigger none`` runs no stream and only checks that every file of ``--ds`` is in bronze as
delivered (the daily DAG's check while a continuous stream owns the landing folder).

**Batch** (no ``--checkpoint``): replaces the ``ingest_date = ds`` partition of
``<catalog>.<bronze-schema>.events`` and ``.events_quarantine`` from the date's files.

Either way it reads ``<landing>/<ds>/*.csv`` and ``*.csv.gz``, records every file in
``events_ingest_files`` and the date in ``events_ingest_log``, prints rows in, bronze rows and
quarantined rows (by reason) of the date, and exits non-zero unless every file's rows in =
bronze + quarantined. The quarantine reasons and parsing rules: ``clickstream/pipeline/
landing.py``. ``--ingest-ts`` (batch only; default: the end of ``ds``, UTC) is stored as
``ingested_at``; never the wall clock, so that a rerun writes identical rows.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments
from clickstream.core.jobs import parser as job_parser
from clickstream.pipeline.ingest import IngestCounts, ingest, settle_date
from clickstream.pipeline.landing import landing_files
from clickstream.pipeline.stream import SOURCES, run_stream, trigger_options


def _parser() -> argparse.ArgumentParser:
    parser = job_parser(__doc__)
    parser.add_argument("--ds", help="logical date, YYYY-MM-DD (all but a continuous stream)")
    parser.add_argument("--catalog", required=True, help="spark_catalog locally, a UC catalog")
    parser.add_argument("--landing-dir", required=True, help="folder of the <ds>/ folders")
    parser.add_argument("--bronze-schema", default="bronze")
    parser.add_argument("--ingest-ts", help="ISO timestamp stored as ingested_at (batch only)")
    parser.add_argument("--checkpoint", help="stream checkpoint folder (a Volume): stream mode")
    parser.add_argument("--source", choices=SOURCES, default="files", help="stream source")
    parser.add_argument("--trigger", default="available-now", help="stream trigger")
    parser.add_argument(
        "--try-number",
        type=int,
        default=1,
        help="the Airflow try of the task: from 2 on (a retry, a cleared task) the date is "
        "re-ingested from its files after the stream",
    )
    return parser


def _print_counts(ds: str, counts: IngestCounts) -> None:
    print(f"{ds}: {counts['files']} file(s) read")
    print(f"{ds}: rows in      {counts['rows_in']}")
    print(f"{ds}: bronze       {counts['bronze']}")
    print(f"{ds}: quarantined  {counts['quarantined']}")
    for reason, n in counts["reasons"].items():
        print(f"{ds}:   {reason}: {n}")
    if counts["rows_in"] == 0:
        print(f"{ds}: note: the file(s) hold no rows (empty or header only); nothing landed")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(_parser(), argv, "ingest_events")
    continuous = args.trigger not in ("available-now", "none")
    with expected_failures("ingest_events"):
        if args.trigger != "none":
            trigger_options(args.trigger)
        if args.ds is None and not (args.checkpoint and continuous):
            raise ValueError("--ds is required (all but a continuous stream)")
        if args.checkpoint is None and (args.trigger != "available-now" or args.source != "files"):
            raise ValueError("--trigger and --source apply to a stream: give --checkpoint")
        if args.checkpoint and args.ingest_ts:
            raise ValueError("--ingest-ts applies to the batch ingest (without --checkpoint)")
        if args.ds and not continuous:
            landing_files(args.landing_dir, args.ds)  # no folder or file: fail before Spark
    spark = SparkSession.builder.getOrCreate()
    where = {"catalog": args.catalog, "landing_dir": args.landing_dir, "schema": args.bronze_schema}
    with expected_failures("ingest_events"):
        if args.checkpoint is None:
            ingested_at = datetime.fromisoformat(args.ingest_ts) if args.ingest_ts else None
            counts = ingest(spark, ds=args.ds, ingested_at=ingested_at, **where)
        else:
            streamed = args.trigger != "none"  # none: a continuous stream owns the landing
            if streamed:
                result = run_stream(
                    spark,
                    checkpoint=args.checkpoint,
                    source=args.source,
                    trigger=args.trigger,
                    **where,
                )
                landed = sum(len(files) for files in result.files.values())
                print(f"stream: {result.batches} micro-batch(es), {landed} new file(s) landed")
            if args.ds is None:
                return 0
            counts = settle_date(
                spark,
                ds=args.ds,
                reingest=streamed,
                force=streamed and args.try_number > 1,
                **where,
            )
    _print_counts(args.ds, counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
