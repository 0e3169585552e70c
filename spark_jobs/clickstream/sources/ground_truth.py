"""The synthetic generator's ground truth of the purchase label: the Bayes score it implies.

A user's purchases on a day depend on the user (``purchase_propensity`` and the activity share,
the probability that any session is theirs) and on the day (how many sessions it holds and the
behaviour multipliers of a ``behaviour_change`` drift). The generator writes both beside the
events (``ground_truth/users.csv`` and ``ground_truth/days.csv``, see ``generate_events.py``);
:func:`label_probability` turns them into each row's true probability of a purchase within the
label horizon. Days are independent given the user, so no function of a user's past events can
rank the label better: its ROC AUC on a set of rows is the oracle of the propensity model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from clickstream.sources.synthetic import (
    SESSION_VIEWS,
    Drift,
    World,
    _day_events,
    behaviour_scales,
    conversion_rates,
)


@dataclass(frozen=True)
class DayTruth:
    """What the purchases of a day depend on besides the users: its sessions and scales."""

    day: date
    sessions: int  # sessions with at least one event in the day's file
    cart_scale: float
    buy_scale: float


DAYS_HEADER = "day,sessions,cart_scale,buy_scale"
NO_DRIFT = Drift()


def day_truth(
    world: World, seed: int, day: date, events_per_day: int, drift: Drift = NO_DRIFT
) -> DayTruth:
    """The day's :class:`DayTruth`, from the same draws as ``generate_day``."""
    columns, _ = _day_events(world, seed, day, events_per_day, drift)
    return DayTruth(day, len(np.unique(columns["session"])), *behaviour_scales(day, drift))


def day_truth_of_lines(lines: list[str], day: date, drift: Drift = NO_DRIFT) -> DayTruth:
    """The day's :class:`DayTruth` from the lines ``generate_day`` returned, without drawing
    the day again: each session has its own random UUID, the lines' last field."""
    sessions = len({line.rsplit(",", 1)[1] for line in lines})
    return DayTruth(day, sessions, *behaviour_scales(day, drift))


def days_csv(days: list[DayTruth]) -> bytes:
    """The :class:`DayTruth` rows as CSV, one line per day in date order."""
    lines = [DAYS_HEADER] + [
        f"{d.day.isoformat()},{d.sessions},{d.cart_scale:.6f},{d.buy_scale:.6f}"
        for d in sorted(days, key=lambda d: d.day)
    ]
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def parse_days_csv(text: str) -> dict[date, DayTruth]:
    """The :class:`DayTruth` of each day of a :func:`days_csv` file."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != DAYS_HEADER:
        raise ValueError(f"not a days file: the header must be {DAYS_HEADER!r}")
    days = {}
    for line in lines[1:]:
        day, sessions, cart, buy = line.split(",")
        parsed = date.fromisoformat(day)
        days[parsed] = DayTruth(parsed, int(sessions), float(cart), float(buy))
    return days


def no_purchase_in_session(q: np.ndarray) -> np.ndarray:
    """E[(1 - q)^V] over the views V of a session: P(no purchase in it) at P(buy | view) = q."""
    p, cap = SESSION_VIEWS
    views = np.arange(1, cap + 1)
    pmf = p * (1.0 - p) ** (views - 1)
    pmf[-1] = (1.0 - p) ** (cap - 1)  # min(geometric, cap): the whole tail lands on the cap
    return (1.0 - np.asarray(q, dtype=float))[..., None] ** views @ pmf


def purchase_probability(
    propensity: np.ndarray, share: np.ndarray, days: list[DayTruth]
) -> np.ndarray:
    """P(at least one purchase on ``days``) of users with ``propensity`` and activity ``share``.

    Each of a day's ``N_d`` sessions is the user's with probability ``a`` and then holds a
    purchase with probability ``1 - g_d(q)``, ``q = P(cart | view) P(purchase | cart)`` on the
    day's scales: ``1 - prod_d (1 - a (1 - g_d(q)))^N_d``.
    """
    propensity = np.asarray(propensity, dtype=float)
    share = np.asarray(share, dtype=float)
    log_none = np.zeros(len(propensity))
    for d in days:
        cart, buy = conversion_rates(propensity, d.cart_scale, d.buy_scale)
        per_session = share * (1.0 - no_purchase_in_session(cart * buy))
        log_none += d.sessions * np.log1p(-per_session)
    return -np.expm1(log_none)


def label_probability(
    propensity: np.ndarray,
    share: np.ndarray,
    feature_dates,
    days: dict[date, DayTruth],
    horizon_days: int,
) -> np.ndarray:
    """P(a purchase in days F+1..F+h) of rows of users and feature dates F: the oracle score.

    Raises ``KeyError`` naming the first day of a horizon that ``days`` does not cover.
    """
    dates = np.asarray([date.fromisoformat(str(f)[:10]) for f in feature_dates], dtype=object)
    propensity = np.asarray(propensity, dtype=float)
    share = np.asarray(share, dtype=float)
    score = np.full(len(dates), np.nan)
    for feature_date in sorted(set(dates.tolist())):
        horizon = [feature_date + timedelta(days=k) for k in range(1, horizon_days + 1)]
        missing = [d for d in horizon if d not in days]
        if missing:
            raise KeyError(f"no ground truth for {missing[0]} (feature date {feature_date})")
        rows = dates == feature_date
        score[rows] = purchase_probability(
            propensity[rows], share[rows], [days[d] for d in horizon]
        )
    return score
