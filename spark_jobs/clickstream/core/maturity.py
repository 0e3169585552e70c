"""Feature maturity: which feature dates have their whole 30-day window inside the data.

The features of date F count the events of ``[F-29, F]`` (:data:`WINDOWS`' longest window). When
the data begins after ``F-29``, F's 30-day counts, ``tenure_days`` and the recencies are
truncated: they describe the first days of the data, not the users. Such a date is *immature*.
A model trained on immature rows learns the truncation, and a drift check whose reference is
immature flags every 30-day column against a mature month, with no drift at all.

So training, validation and both sides of a drift comparison use mature dates only:
a feature date F is mature when ``F - (MATURITY_DAYS - 1) >= data start``, the first ingest date
of ``silver.events`` (the first day a file was delivered). A first run therefore needs
``MATURITY_DAYS - 1`` days of history before its earliest training date.
"""

from __future__ import annotations

from datetime import date, timedelta

from clickstream.core.contracts import SILVER_EVENTS, WINDOWS
from clickstream.core.jobs import JobError

MATURITY_DAYS = max(WINDOWS)


class ImmatureWindowError(JobError):
    """A window of feature dates starts before its 30-day windows are full."""


def mature_from(data_start: date) -> date:
    """The first mature feature date of data that begins on ``data_start``."""
    return data_start + timedelta(days=MATURITY_DAYS - 1)


def first_data_date(spark, catalog: str, silver_schema: str = "silver") -> date | None:
    """The first ingest date of ``silver.events`` (None when the table is empty or missing)."""
    from pyspark.sql import functions as F

    name = SILVER_EVENTS.name(catalog, silver_schema)
    if not spark.catalog.tableExists(name):
        return None
    first = spark.table(name).agg(F.min("ingest_date")).first()[0]
    return first


def require_mature(window: str, start: date, end: date, data_start: date | None) -> None:
    """Refuse the window ``[start, end]`` named ``window`` when a date of it is immature."""
    if data_start is None:
        raise ImmatureWindowError(
            f"the {window} window {start}..{end} has no data: silver.events is empty"
        )
    first_mature = mature_from(data_start)
    if start < first_mature:
        raise ImmatureWindowError(
            f"the {window} window {start}..{end} starts before {first_mature}, the first "
            f"mature feature date: the data begins on {data_start}, and a feature date's "
            f"{MATURITY_DAYS}-day window must lie inside the data (load at least "
            f"{(first_mature - start).days} more day(s) of history before {data_start}, or "
            "move the window later)"
        )
