"""What lands in the landing Volume, and landing it: real and bad REES46 lines, generated days of
well-formed lines, bronze written straight from lines, and the ingest job run in this process.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.support.env import environment

LANDING = "/Volumes/ecom/raw/landing/events"  # what the DAGs pass; jobs map it to a local root
DAYS = ["2019-10-01", "2019-10-02", "2019-10-03", "2019-10-04"]  # the reliability tests' days
CATALOG = "spark_catalog"
ROWS_PER_DAY = 40  # landing_lines' default: a day of the quality and bad-input tests

# Real lines of the published 2019-Oct.csv.
REAL = [
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,"
    "72d76fde-8bb3-4e00-8c23-a032dfed738c",
    "2019-10-01 00:00:00 UTC,view,3900821,2053013552326770905,appliances.environment.water_heater,"
    "aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc",
    "2019-10-01 00:00:01 UTC,view,17200506,2053013559792632471,furniture.living_room.sofa,,543.10,"
    "519107250,566511c2-e78c-4a31-8d45-8f7de1b6c9d1",
]
# One line per quarantine reason, keyed by the reason.
BAD = {
    "empty_line": "   ",
    "wrong_field_count": "2019-10-01 00:00:02 UTC,view,1,2053013552326770905,,x,1.00,541312140",
    "bad_event_time": "2019-13-01 00:00:02 UTC,view,1,2053013552326770905,,x,1.00,541312140,s",
    "bad_event_type": "2019-10-01 00:00:02 UTC,click,1,2053013552326770905,,x,1.00,541312140,s",
    "bad_product_id": "2019-10-01 00:00:02 UTC,view,abc,2053013552326770905,,x,1.00,541312140,s",
    "bad_category_id": "2019-10-01 00:00:02 UTC,view,1,,,x,1.00,541312140,s",
    "bad_price": "2019-10-01 00:00:02 UTC,view,1,2053013552326770905,,x,-5.00,541312140,s",
    "bad_user_id": "2019-10-01 00:00:02 UTC,view,1,2053013552326770905,,x,1.00,user42,s",
    "missing_user_session": "2019-10-01 00:00:02 UTC,view,1,2053013552326770905,,x,1.00,5,",
}
# Lines that a lenient parser would accept after silently changing them.
NOT_SILENTLY_FIXED = {
    "bad_price": "2019-10-01 00:00:02 UTC,view,1,2053013552326770905,,x,1.005,541312140,s",
    "bad_product_id": "2019-10-01 00:00:02 UTC,view, 7,2053013552326770905,,x,1.00,541312140,s",
    "bad_event_time": "2019-10-01 00:00:02,view,1,2053013552326770905,,x,1.00,541312140,s",
    "bad_user_id": "2019-10-01 00:00:02 UTC,view,1,2053013552326770905,,x,1.00,99999999999999999999,s",
}


def landing_lines(ds: str, n: int = ROWS_PER_DAY, *, price: str = "19.99") -> list[str]:
    """``n`` well-formed lines of ``ds``, one second apart, at ``price``."""
    kinds = ("view", "view", "cart", "purchase", "remove_from_cart")
    return [
        f"{ds} {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} UTC,{kinds[i % 5]},"
        f"{1000 + i},2053013552326770905,electronics.audio,acme,{price},{500 + i % 7},s{i % 9}"
        for i in range(n)
    ]


def land_bronze(spark, days: dict[str, list[str]], schema: str, edit=None) -> None:
    """Bronze and quarantine rows of several dates, parsed by the ingest's own functions and
    written in one go (an ``ingest()`` per date costs seconds each on a busy machine).

    ``edit`` (DataFrame -> DataFrame) changes the parsed rows before they are written: how a
    test lands a row the ingest would have quarantined, as a broken writer would have. The
    dates are then committed as the ingest commits them (file records, then the ingest log), so
    the jobs downstream take them as ingested.
    """
    from clickstream.core.contracts import BRONZE_EVENTS, BRONZE_QUARANTINE, write_partition
    from clickstream.pipeline.ingest import (
        BRONZE_INGEST_FILES,
        bronze_rows,
        count_by_file,
        default_ingested_at,
        file_log_frame,
        file_records,
        quarantine_rows,
        refresh_ingest_log,
    )
    from clickstream.pipeline.landing import parse_lines

    parsed = None
    for ds, lines in days.items():
        frame = spark.createDataFrame(
            [(line, f"/landing/{ds}/events.csv") for line in lines],
            "raw_record string, source_file string",
        )
        day = parse_lines(frame, ds, default_ingested_at(ds))
        parsed = day if parsed is None else parsed.unionByName(day)
    if edit is not None:
        parsed = edit(parsed)
    dates = f"ingest_date IN ({', '.join(f'DATE{ds!r}' for ds in days)})"
    write_partition(spark, bronze_rows(parsed), BRONZE_EVENTS, CATALOG, dates, schema)
    write_partition(spark, quarantine_rows(parsed), BRONZE_QUARANTINE, CATALOG, dates, schema)
    files = {f"/landing/{ds}/events.csv": (ds, 0, 0) for ds in days}
    records = file_log_frame(spark, file_records(count_by_file(parsed), files), "test")
    write_partition(spark, records, BRONZE_INGEST_FILES, CATALOG, dates, schema)
    refresh_ingest_log(spark, CATALOG, schema, list(days))


@contextlib.contextmanager
def volumes_root(root: Path):
    """Jobs run in this process map ``/Volumes/...`` to ``root``, as the workspace maps its own."""
    with environment(LOCAL_VOLUMES_ROOT=str(root)):
        yield


def ingest(volumes: Path, schema: str, ds: str) -> None:
    """``ingest_events.py`` for ``ds`` from the Volume's landing folder, in this process."""
    from ingest_events import main as ingest_main

    with volumes_root(volumes):
        ingest_main(
            [
                "--ds",
                ds,
                "--catalog",
                CATALOG,
                "--landing-dir",
                LANDING,
                "--bronze-schema",
                schema,
            ]
        )
