"""Builders of tiny inline silver-event rows for the transformation tests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from clickstream.core.contracts import SILVER_EVENTS

F_DATE = date(2019, 10, 31)
SILVER_SCHEMA = ", ".join(f"{c.name} {c.type}" for c in SILVER_EVENTS.columns)


def event(
    user: int,
    day: date,
    kind: str = "view",
    product: int = 1,
    price: str = "10.00",
    *,
    ingest: date | None = None,
    session: str = "s1",
    category: int = 100,
    brand: str | None = "acme",
    second: int = 0,
) -> tuple:
    """One silver row; ``ingest`` defaults to the event's own date (delivered on time)."""
    when = datetime(day.year, day.month, day.day, 12, 0, second)
    return (
        f"{user}-{day}-{kind}-{product}-{second}-{session}",
        when,
        kind,
        product,
        category,
        None,
        brand,
        Decimal(price),
        user,
        session,
        None,
        day,
        ingest or day,
        "landing/file.csv",
    )
