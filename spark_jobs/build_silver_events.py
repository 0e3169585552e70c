"""Merge the bronze events ingested on one logical date into ``silver.events``.

    build_silver_events.py --ds 2019-10-01 --catalog spark_catalog \
        [--bronze-schema bronze] [--silver-schema silver]

Reads only the ``ingest_date = ds`` partition of bronze and MERGEs it on the event key into
the event-date partitions it touches (see ``clickstream/pipeline/silver.py``). A rerun changes
nothing; dates processed in any order give the same table.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from clickstream.core.jobs import expected_failures, parse_arguments, parser
from clickstream.pipeline.silver import build_silver_events


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__)
    cli.add_argument("--ds", required=True, help="logical date, YYYY-MM-DD")
    cli.add_argument("--catalog", required=True)
    cli.add_argument("--bronze-schema", default="bronze")
    cli.add_argument("--silver-schema", default="silver")
    args = parse_arguments(cli, argv, "build_silver_events")
    spark = SparkSession.builder.getOrCreate()
    with expected_failures("build_silver_events"):
        result = build_silver_events(
            spark,
            ds=args.ds,
            catalog=args.catalog,
            bronze_schema=args.bronze_schema,
            silver_schema=args.silver_schema,
        )
    print(f"{args.ds}: {result['events']} distinct events merged into {result['table']}")
    for event_date, n in sorted(result["event_dates"].items()):
        late = "  (late)" if event_date < args.ds else ""
        print(f"{args.ds}:   event_date {event_date}: {n}{late}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
