"""Synthetic click-stream in the exact format of the public REES46 files.

Behaviour modelled: a fixed product catalogue (categories with 19-digit ids, optional
``category_code`` and ``brand``, log-normal prices), users with a latent purchase propensity
and category preferences, sessions of view -> cart -> remove/purchase funnels (views dominate,
carts and purchases in the low single-digit percent of events), weekend seasonality and a few
late events (an event of D-1 or D-2 arriving in day D's file). Drift scenarios start at a date.

Deterministic: the catalogue and users depend on the seed only; each day's events on the seed
and the date only, so a day's file is byte-identical whatever other days are generated.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from clickstream.schema import RAW_COLUMNS

CATEGORIES = (
    ("electronics.smartphone", 2.4), ("electronics.audio.headphone", 1.2),
    ("appliances.kitchen.refrigerators", 2.9), ("computers.notebook", 3.0),
    ("apparel.shoes", 1.0), ("furniture.living_room.sofa", 2.6), ("", 0.9),
    ("kids.toys", 0.7), ("sport.bicycle", 2.2), ("", 1.5), ("accessories.bag", 0.9),
    ("construction.tools.drill", 1.4),
)  # fmt: skip
BRANDS = ("samsung", "apple", "xiaomi", "huawei", "lg", "sony", "bosch", "nike", "lenovo", "")
DRIFT_SCENARIOS = ("none", "price_shift", "category_mix", "behaviour_change")


@dataclass(frozen=True)
class World:
    product_ids: np.ndarray
    product_category: np.ndarray
    product_brand: list[str]
    product_price: np.ndarray
    category_ids: np.ndarray
    user_ids: np.ndarray
    propensity: np.ndarray
    activity: np.ndarray
    preferences: np.ndarray


def build_world(seed: int, users: int, products: int = 800) -> World:
    rng = np.random.default_rng([seed, 0])
    n_cat = len(CATEGORIES)
    category_ids = rng.integers(2_053_013_552_000_000_000, 2_232_732_000_000_000_000, n_cat)
    product_category = rng.integers(0, n_cat, products)
    base = np.array([10 ** c[1] for c in CATEGORIES])
    price = np.round(base[product_category] * rng.lognormal(0.0, 0.45, products), 2)
    brand_index = rng.integers(0, len(BRANDS), products)
    return World(
        product_ids=np.sort(rng.choice(np.arange(1_000_000, 100_000_000), products, replace=False)),
        product_category=product_category,
        product_brand=[BRANDS[i] for i in brand_index],
        product_price=np.maximum(price, 0.5),
        category_ids=category_ids,
        user_ids=np.sort(rng.choice(np.arange(510_000_000, 580_000_000), users, replace=False)),
        propensity=rng.beta(1.3, 14.0, users),
        activity=rng.gamma(1.5, 1.0, users),
        preferences=rng.dirichlet(np.full(n_cat, 0.6), users),
    )


def _day_rng(seed: int, day: date) -> np.random.Generator:
    return np.random.default_rng([seed, 1, day.toordinal()])


def generate_day(
    world: World,
    seed: int,
    day: date,
    events_per_day: int,
    drift_scenario: str = "none",
    drift_start: date | None = None,
) -> list[tuple]:
    """The day's events as REES46 rows (strings), sorted by event time."""
    if drift_scenario not in DRIFT_SCENARIOS:
        raise ValueError(f"unknown drift scenario {drift_scenario!r}; use one of {DRIFT_SCENARIOS}")
    drifting = drift_scenario != "none" and drift_start is not None and day >= drift_start
    rng = _day_rng(seed, day)
    weekend = day.weekday() >= 5
    target = int(events_per_day * (1.15 if weekend else 1.0))
    activity_cdf = np.cumsum(world.activity) / world.activity.sum()
    prices = world.product_price.copy()
    preferences = world.preferences
    cart_scale = 1.0
    if drifting and drift_scenario == "price_shift":
        prices = np.where(world.product_category < 4, np.round(prices * 1.3, 2), prices)
    if drifting and drift_scenario == "category_mix":
        preferences = 0.4 * preferences + 0.6 * np.eye(len(CATEGORIES))[4]
    if drifting and drift_scenario == "behaviour_change":
        cart_scale = 0.4
    preference_cdf = np.cumsum(preferences, axis=1)
    by_category = [np.flatnonzero(world.product_category == c) for c in range(len(CATEGORIES))]
    start = datetime(day.year, day.month, day.day)
    rows: list[tuple] = []
    while len(rows) < target:
        u = min(int(np.searchsorted(activity_cdf, rng.random())), len(world.user_ids) - 1)
        session = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        t = start + timedelta(seconds=int(rng.integers(0, 86_000)))
        if rng.random() < 0.004:  # a late event: it happened one or two days earlier
            t -= timedelta(days=int(rng.integers(1, 3)))
        p_cart = min(0.9, 0.45 * world.propensity[u] * cart_scale)
        for _ in range(int(rng.geometric(0.18))):
            category = int(np.searchsorted(preference_cdf[u], rng.random() * preference_cdf[u, -1]))
            category = min(category, len(CATEGORIES) - 1)
            if len(by_category[category]) == 0:
                continue
            product = int(by_category[category][rng.integers(len(by_category[category]))])
            events = ["view"]
            if rng.random() < p_cart:
                events.append("cart")
                roll = rng.random()
                if roll < 0.45 + world.propensity[u]:
                    events.append("purchase")
                elif roll < 0.75:
                    events.append("remove_from_cart")
            for event in events:
                t += timedelta(seconds=int(rng.integers(1, 90)))
                rows.append((
                    t.strftime("%Y-%m-%d %H:%M:%S UTC"), event,
                    str(world.product_ids[product]), str(world.category_ids[category]),
                    CATEGORIES[category][0], world.product_brand[product],
                    f"{prices[product]:.2f}", str(world.user_ids[u]), session,
                ))  # fmt: skip
    rows.sort(key=lambda r: r[0])
    return rows[:target]


def to_csv(rows: list[tuple]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RAW_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def ground_truth_csv(world: World) -> bytes:
    lines = ["user_id,purchase_propensity"]
    lines += [f"{u},{p:.6f}" for u, p in zip(world.user_ids, world.propensity, strict=True)]
    return ("\n".join(lines) + "\n").encode()
