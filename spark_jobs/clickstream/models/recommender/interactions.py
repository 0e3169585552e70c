"""What the recommender learns from and is judged on: implicit feedback from silver events.

**Implicit feedback.** Nobody rates products here; users view, cart and buy them. Each event is
a weighted vote (:data:`EVENT_WEIGHTS`: a purchase says more than a view; ``remove_from_cart`` is
ignored rather than counted negative, because the cart event before it already showed interest
and implicit ALS has no notion of a negative signal). The votes are summed per (user, product)
and dampened with ``log1p``: implicit ALS turns the strength ``r`` into a confidence
``1 + alpha * r``, and raw counts would let a user refreshing a product page 300 times (or a
crawler) outweigh several purchases; ``log1p`` keeps the order of the strengths but grows
slowly, and maps "one view" to a small positive value (0.69), never to 0.

**Point in time.** Interactions for the window ``[start, end]`` are the events with
``event_date`` in the window *and* delivered by its end (``ingest_date <= end``), the rule used
across the project: a model trained "as of D" can be retrained later and see the same data.

Besides :func:`interactions` (the training input), :func:`purchases_to_exclude` gives the pairs
not worth recommending and :func:`relevant_items` the evaluation target of a later window.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "cart": 4.0, "purchase": 10.0}
RELEVANT_EVENTS: tuple[str, ...] = ("cart", "purchase")


def _day(value: date) -> Column:
    return F.lit(value.isoformat()).cast("date")


def _known_by(events: DataFrame, start: date, end: date) -> DataFrame:
    """Events of [start, end] delivered by the end of ``end`` (the point-in-time rule)."""
    if end < start:
        raise ValueError(f"the window {start}..{end} is empty: the end is before the start")
    return events.where(
        F.col("event_date").between(_day(start), _day(end)) & (F.col("ingest_date") <= _day(end))
    )


def interactions(events: DataFrame, start: date, end: date) -> DataFrame:
    """Implicit feedback per (user, product): ``log1p`` of the summed event weights.

    Columns ``user_id bigint, product_id bigint, strength double``; a pair whose only events
    are ``remove_from_cart`` has no row.
    """
    weights = F.create_map(*(F.lit(x) for pair in EVENT_WEIGHTS.items() for x in pair))
    weight = weights[F.col("event_type")]
    return (
        _known_by(events, start, end)
        .where(F.col("event_type").isin(list(EVENT_WEIGHTS)))
        .groupBy("user_id", "product_id")
        .agg(F.log1p(F.sum(weight)).alias("strength"))
        .select(
            F.col("user_id").cast("bigint"),
            F.col("product_id").cast("bigint"),
            F.col("strength").cast("double"),
        )
    )


def purchases_to_exclude(events: DataFrame, end: date, days: int) -> DataFrame:
    """(user_id, product_id) pairs bought in the ``days`` days ending at ``end`` (known by then)."""
    if days < 1:
        raise ValueError(f"the exclusion window must be at least 1 day, got {days}")
    start = end - timedelta(days=days - 1)
    return (
        _known_by(events, start, end)
        .where(F.col("event_type") == "purchase")
        .select(F.col("user_id").cast("bigint"), F.col("product_id").cast("bigint"))
        .distinct()
    )


def relevant_items(events: DataFrame, start: date, end: date) -> DataFrame:
    """(user_id, product_id) pairs carted or bought in [start, end]: the evaluation target.

    Views are left out on purpose: a view is often the consequence of being shown a product,
    while a cart or a purchase is the intent a recommendation should anticipate.
    """
    return (
        _known_by(events, start, end)
        .where(F.col("event_type").isin(list(RELEVANT_EVENTS)))
        .select(F.col("user_id").cast("bigint"), F.col("product_id").cast("bigint"))
        .distinct()
    )
