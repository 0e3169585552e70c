r"""Validate the data of one logical date with Great Expectations; write report and summary.

    validate_data.py --ds 2019-10-01 --catalog spark_catalog --suite bronze_events \
        [--suite silver_events --suite user_features] \
        --output /Volumes/ecom/raw/reports/data_quality_validation/2019-10-01/bronze_events \
        [--bronze-schema bronze] [--silver-schema silver] [--monitoring-schema monitoring] \
        [--airflow-run-id scheduled__2019-10-01T00:00:00+00:00] \
        [--late-tolerance-hours 6] [--volume-lookback-days 7]

Runs each suite on the day's rows (``bronze.events`` by ``ingest_date``, ``silver.events`` by
``event_date``, ``silver.user_features`` by ``feature_date``), replaces the (ds, suite) rows
of ``<catalog>.<monitoring-schema>.dq_results``, and writes ``<output>.html`` (a
self-contained page) and ``<output>.json`` (the summary the Airflow gate reads: ``success`` is
false iff a blocking expectation failed). ``--output`` is a path prefix, a Volume path on
Databricks.

Exits 0 whether or not the expectations pass: the report is uploaded first, then the gate task
fails the DAG run from the summary. An empty day (ingested, but its files held no rows) is such
a result: the blocking row-count expectation fails with the observed ``0 rows`` and the reason.
Fails (one line) only when it cannot validate, e.g. the table of a suite is missing, or the
date was never ingested / built. The suites, their expectations and thresholds are defined
in ``clickstream/quality/checks.py`` and listed in ``docs/quality_checks.md``.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments
from clickstream.core.jobs import parser as job_parser
from clickstream.quality.checks import LATE_TOLERANCE_HOURS, SUITES, VOLUME_LOOKBACK_DAYS
from clickstream.quality.results import status_text
from clickstream.quality.validation import run


def _parser():
    parser = job_parser(__doc__)
    parser.add_argument("--ds", required=True, help="logical date, YYYY-MM-DD")
    parser.add_argument("--catalog", required=True, help="spark_catalog locally, a UC catalog")
    parser.add_argument(
        "--suite", action="append", required=True, choices=SUITES, help="repeat for several"
    )
    parser.add_argument("--output", required=True, help="path prefix of <output>.html/.json")
    parser.add_argument("--bronze-schema", default="bronze")
    parser.add_argument("--silver-schema", default="silver")
    parser.add_argument("--monitoring-schema", default="monitoring")
    parser.add_argument("--airflow-run-id", default="manual")
    parser.add_argument(
        "--late-tolerance-hours",
        type=float,
        default=LATE_TOLERANCE_HOURS,
        help="bronze event_time may be this much before ds (warning beyond)",
    )
    parser.add_argument(
        "--volume-lookback-days",
        type=int,
        default=VOLUME_LOOKBACK_DAYS,
        help="days of bronze history whose median the day's volume is compared with",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(_parser(), argv, "validate_data")
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("validate_data"):
        summary, outcomes = run(
            spark,
            ds=args.ds,
            catalog=args.catalog,
            suites=args.suite,
            output=args.output,
            bronze_schema=args.bronze_schema,
            silver_schema=args.silver_schema,
            monitoring_schema=args.monitoring_schema,
            airflow_run_id=args.airflow_run_id,
            late_tolerance_hours=args.late_tolerance_hours,
            volume_lookback_days=args.volume_lookback_days,
        )
    ds, counts = summary["ds"], summary["counts"]
    print(
        f"{ds}: evaluated {counts['evaluated']}, passed {counts['passed']}, "
        f"blocking failed {counts['blocking_failed']}, warnings {counts['warning_failed']}, "
        f"skipped {counts['skipped']}"
    )
    print(f"{ds}: results written to {summary['table']}")
    print(f"{ds}: report  {summary['report']}")
    print(f"{ds}: summary {args.output}.json")
    for kind, entries in (
        ("BLOCKING", summary["blocking_failures"]),
        ("warning", summary["warnings"]),
    ):
        for e in entries:
            column = f"({e['column']})" if e["column"] else ""
            print(
                f"{ds}: {kind}: {e['suite']}: {e['expectation']}{column}: "
                f"observed {e['observed']}; expected {e['expected']}"
            )
    for o in outcomes:
        if o.status == "skipped":
            print(f"{ds}: skipped: {o.suite}: {o.expectation}({o.column}): {o.observed}")
    print(f"{ds}: status {status_text(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
