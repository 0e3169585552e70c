"""Synthetic click-stream in the exact format of the public REES46 files.

The published "eCommerce behavior data from multi category store" files look like::

    event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
    2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d7...

What is modelled, and why each part exists (the downstream jobs and tests rely on it):

* **Catalogue** (fixed per seed): categories with a 19-digit ``category_id``, a dotted
  ``category_code`` or none (about a quarter of the traffic, as in the published data), brands
  per category, ~12% anonymous (empty) brands, log-normal prices around a category median and
  a long-tailed product popularity inside each category.
* **Users** (fixed per seed): 9-digit ids, an activity level, category preferences and a latent
  purchase propensity in [0, 1]. The propensity and the activity share (the probability that
  a session is the user's) are the ground truth, written apart from the events, never into
  them; with each day's session count and drift multipliers they give every user's true
  probability of a purchase (``clickstream.sources.ground_truth``).
* **Item-level taste** (fixed per seed): latent factors of rank ``TASTE_RANK`` for every user
  and product. A view picks a category from the user's preferences, then a product inside it
  with probability proportional to popularity x exp(``TASTE_STRENGTH`` x u.v), so users of the
  same categories still favour different products: the collaborative signal a recommender can
  learn. :func:`view_probabilities` gives those true probabilities (the recommender's ceiling).
* **Sessions**: a UUID each, a start drawn from a daily traffic curve, a geometric number of
  product views; each view may lead to ``cart`` and then to ``purchase`` or
  ``remove_from_cart``, with probabilities driven by the user's propensity. Views dominate;
  carts and purchases are each a low single-digit percentage of events.
* **Weekly seasonality**: weekend days carry ~20% more events than weekdays.
* **Late events**: ~0.3% of sessions happened one or two days before the file's day (they
  arrive late), so ``event_date`` and ``ingest_date`` differ for a few rows.
* **Drift**, from ``drift_start`` on: ``price_shift`` (prices x1.3 in the ``electronics.*``
  and ``computers.*`` categories), ``category_mix`` (60% of every user's interest moves to
  apparel, kids and sport), ``behaviour_change`` (cart rate x0.5 and purchase-after-cart
  x0.6: lower conversion for the same users).

Deterministic: the catalogue and users depend on ``(seed, users, products)`` only, a day's
events on those, the day, the volume and the drift settings, never on which other days are
generated; the same inputs give a byte-identical file. Vectorised with numpy: a 20k-event day
takes well under a second (about 0.2 s, most of it the taste-weighted product choice and
formatting the lines).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from clickstream.core.schema import EVENT_TYPES, HEADER


@dataclass(frozen=True)
class Category:
    code: str  # empty: the row has no category_code, as for many published rows
    median_price: float
    brands: tuple[str, ...]
    traffic: float  # share of all product views


CATEGORIES: tuple[Category, ...] = (
    Category(
        "electronics.smartphone", 260.0, ("samsung", "apple", "xiaomi", "huawei", "oppo"), 0.22
    ),
    Category("electronics.audio.headphone", 55.0, ("apple", "samsung", "sony", "jbl"), 0.06),
    Category("electronics.video.tv", 420.0, ("samsung", "lg", "sony", "philips"), 0.05),
    Category("computers.notebook", 720.0, ("lenovo", "hp", "asus", "acer", "apple"), 0.06),
    Category("appliances.kitchen.washer", 310.0, ("samsung", "lg", "bosch", "indesit"), 0.06),
    Category(
        "appliances.environment.vacuum", 120.0, ("samsung", "philips", "vitek", "bosch"), 0.05
    ),
    Category("apparel.shoes", 80.0, ("nike", "adidas", "puma", "respect"), 0.07),
    Category("furniture.living_room.sofa", 460.0, ("lavsit", "brw", "mebelgrad"), 0.03),
    Category("kids.toys", 25.0, ("lego", "hasbro", "mattel", "bondibon"), 0.04),
    Category("sport.bicycle", 290.0, ("stels", "forward", "stern"), 0.03),
    Category("accessories.bag", 40.0, ("xiaomi", "samsonite", "rivacase"), 0.03),
    Category("construction.tools.drill", 90.0, ("bosch", "makita", "dewalt"), 0.03),
    Category("", 35.0, ("shiseido", "lucente", "elari", "karcher", "haier"), 0.17),
    Category("", 150.0, ("redmond", "polaris", "tefal"), 0.10),
)
DRIFT_SCENARIOS = ("none", "price_shift", "category_mix", "behaviour_change")
PRICE_SHIFT = (("electronics.", "computers."), 1.3)
CATEGORY_MIX = (("apparel.shoes", "kids.toys", "sport.bicycle"), 0.6)
BEHAVIOUR_CHANGE = (0.5, 0.6)  # multipliers of the cart rate and of purchase-after-cart

# Monday..Sunday volume and the share of a day's sessions starting in each UTC hour.
WEEKDAY_VOLUME = (1.0, 0.98, 0.97, 0.99, 1.03, 1.19, 1.22)
HOURLY_TRAFFIC = np.array(
    [1, 1, 2, 3, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 6, 5, 3, 2, 1, 1], dtype=float
)
LATE_SESSION_SHARE = 0.003
ANONYMOUS_BRAND_SHARE = 0.12
CART_RATE = 0.3  # times the user's propensity: P(cart | view)
SESSION_VIEWS = (0.28, 30)  # views per session: min(geometric(0.28), 30)
REMOVE_RATE = 0.35  # P(remove_from_cart | cart, no purchase)
# Independent random streams, so the catalogue never shifts when the day logic changes.
_WORLD_STREAM, _DAY_STREAM = 0, 1
# Item-level taste: user and item factors of rank TASTE_RANK (u.v has unit variance) from their
# own stream, so adding them moved no other draw; a product inside a category is picked with
# probability proportional to popularity x exp(TASTE_STRENGTH * u.v).
_TASTE_STREAM = 2
TASTE_RANK = 4
TASTE_STRENGTH = 1.0
_TASTE_CELLS = 2_000_000  # users x products weights computed at once (about 16 MB)
_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Drift:
    """A drift scenario active from ``start`` (inclusive) on, at ``magnitude`` of its full size.

    ``magnitude`` scales each scenario's change linearly: 1 is the full change (prices x1.3,
    60% of the interest moved, cart rate x0.5 and purchase-after-cart x0.6), 0.5 half of it
    (prices x1.15, 30% moved, x0.75 and x0.8), 0 none.
    """

    scenario: str = "none"
    start: date | None = None
    magnitude: float = 1.0

    def __post_init__(self) -> None:
        if self.scenario not in DRIFT_SCENARIOS:
            raise ValueError(
                f"unknown drift scenario {self.scenario!r}; use one of {DRIFT_SCENARIOS}"
            )
        if self.scenario != "none" and self.start is None:
            raise ValueError(f"drift scenario {self.scenario!r} needs a start date")
        if not 0.0 <= self.magnitude <= 1.0:
            raise ValueError(f"drift magnitude must be in [0, 1], got {self.magnitude}")

    def active(self, day: date, scenario: str) -> bool:
        return self.scenario == scenario and self.start is not None and day >= self.start


@dataclass(frozen=True)
class World:
    """The fixed catalogue and user base of one seed."""

    product_ids: np.ndarray
    product_category: np.ndarray  # sorted: each category's products form one block
    product_brand: tuple[str, ...]
    product_price: np.ndarray
    product_popularity: np.ndarray  # long-tailed, compared inside a category only
    category_ids: np.ndarray
    user_ids: np.ndarray
    propensity: np.ndarray
    activity_cdf: np.ndarray
    preferences: np.ndarray  # users x categories, rows sum to 1
    user_factors: np.ndarray  # users x TASTE_RANK
    item_factors: np.ndarray  # products x TASTE_RANK


def _unique_integers(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct integers in [low, high), in draw order (no permutation of the range)."""
    drawn = np.empty(0, dtype=np.int64)
    while True:
        drawn = np.concatenate([drawn, rng.integers(low, high, 2 * n + 16, dtype=np.int64)])
        _, first = np.unique(drawn, return_index=True)
        if len(first) >= n:
            return drawn[np.sort(first)[:n]]


def build_world(seed: int, users: int, products: int = 2000) -> World:
    """The catalogue and users of ``seed``; the same arguments always give the same world."""
    n_categories = len(CATEGORIES)
    if users < 1 or products < n_categories:
        raise ValueError(f"need at least 1 user and {n_categories} products")
    rng = np.random.default_rng([seed, _WORLD_STREAM])
    traffic = np.array([c.traffic for c in CATEGORIES])
    traffic /= traffic.sum()
    category_ids = _unique_integers(
        rng, n_categories, 2_053_013_552_000_000_000, 2_232_732_100_000_000_000
    )
    # Every category gets at least one product, the rest follow the traffic shares.
    product_category = np.sort(
        np.concatenate(
            [np.arange(n_categories), rng.choice(n_categories, products - n_categories, p=traffic)]
        )
    )
    product_ids = _unique_integers(rng, products, 1_000_000, 100_000_000)
    n_brands = np.array([len(c.brands) for c in CATEGORIES])
    brand_index = (rng.random(products) * n_brands[product_category]).astype(int)
    anonymous = rng.random(products) < ANONYMOUS_BRAND_SHARE
    brands = tuple(
        "" if anon else CATEGORIES[c].brands[b]
        for c, b, anon in zip(
            product_category.tolist(), brand_index.tolist(), anonymous.tolist(), strict=True
        )
    )
    median = np.array([c.median_price for c in CATEGORIES])[product_category]
    price = np.maximum(np.round(median * rng.lognormal(0.0, 0.6, products), 2), 0.79)
    popularity = rng.lognormal(0.0, 1.2, products)
    activity = rng.gamma(1.2, 1.0, users)
    preferences = rng.dirichlet(np.full(n_categories, 0.7), users) * traffic
    # Items first: a user's factors never depend on the number of products drawn after them.
    taste = np.random.default_rng([seed, _TASTE_STREAM])
    factor_scale = TASTE_RANK**-0.25  # u.v then has unit variance
    item_factors = taste.normal(0.0, factor_scale, (products, TASTE_RANK))
    user_factors = taste.normal(0.0, factor_scale, (users, TASTE_RANK))
    return World(
        product_ids=product_ids,
        product_category=product_category,
        product_brand=brands,
        product_price=price,
        product_popularity=popularity,
        user_factors=user_factors,
        item_factors=item_factors,
        category_ids=category_ids,
        user_ids=np.sort(_unique_integers(rng, users, 510_000_000, 580_000_000)),
        propensity=rng.beta(1.2, 11.0, users),
        activity_cdf=np.cumsum(activity) / activity.sum(),
        preferences=preferences / preferences.sum(axis=1, keepdims=True),
    )


def taste_weights(world: World, users: np.ndarray) -> np.ndarray:
    """``len(users) x products``: popularity x exp(strength x u.v), compared inside a category.

    Dense: the callers pass at most ``_TASTE_CELLS / products`` users at a time.
    """
    affinity = world.user_factors[users] @ world.item_factors.T
    return world.product_popularity * np.exp(TASTE_STRENGTH * affinity)


def _category_blocks(world: World) -> tuple[np.ndarray, np.ndarray]:
    """The first and last product index of each category's block."""
    categories = np.arange(len(CATEGORIES))
    first = np.searchsorted(world.product_category, categories)
    return first, np.searchsorted(world.product_category, categories, side="right") - 1


def _choose_products(
    world: World, user: np.ndarray, category: np.ndarray, roll: np.ndarray
) -> np.ndarray:
    """Each view's product inside its category, drawn by the user's taste weights with ``roll``.

    Category by category, for the users viewing it only, a bounded chunk of (user, category)
    pairs at a time. A view's product depends on its user, category and roll alone (not on the
    chunking or the other views), so a day stays deterministic.
    """
    first, last = _category_blocks(world)
    order = np.lexsort((user, category))
    view_category, view_user = category[order], user[order]
    new_pair = np.ones(len(order), dtype=bool)
    new_pair[1:] = (np.diff(view_category) != 0) | (np.diff(view_user) != 0)
    pair = np.cumsum(new_pair) - 1
    pair_start = np.append(np.flatnonzero(new_pair), len(order))
    pair_category, pair_user = view_category[pair_start[:-1]], view_user[pair_start[:-1]]
    chosen = np.empty(len(order), dtype=np.int64)
    for c in np.unique(pair_category).tolist():
        block = slice(first[c], last[c] + 1)
        size = block.stop - block.start
        step = max(1, _TASTE_CELLS // size)
        lo, hi = np.searchsorted(pair_category, [c, c + 1])
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            affinity = world.user_factors[pair_user[a:b]] @ world.item_factors[block].T
            cumulative = np.cumsum(
                world.product_popularity[block] * np.exp(TASTE_STRENGTH * affinity), axis=1
            )
            # Row r's cumulative shares shifted into (r, r + 1]: one sorted array per chunk.
            keys = (np.arange(b - a)[:, None] + cumulative / cumulative[:, -1:]).ravel()
            views = slice(pair_start[a], pair_start[b])
            row = pair[views] - a
            found = np.searchsorted(keys, row + roll[order[views]], side="right") - row * size
            chosen[views] = block.start + np.clip(found, 0, size - 1)
    product = np.empty(len(order), dtype=np.int64)
    product[order] = chosen
    return product


def view_probabilities(
    world: World, users: np.ndarray, day: date, drift: Drift = Drift()
) -> np.ndarray:
    """``len(users) x products``: the true probability that one view of a user on ``day`` is
    each product (the category by the day's preferences, then the product by taste).

    Carts and purchases follow views at a rate of the user's alone, so per user this is also
    the ranking of the products most likely to be carted or bought: the recommender's ceiling.
    Dense: pass at most a few thousand users at a time.
    """
    weights = taste_weights(world, users)
    one_hot = np.eye(len(CATEGORIES))[world.product_category]
    block_total = (weights @ one_hot)[:, world.product_category]
    category_share = _day_preferences(world, day, drift)[users][:, world.product_category]
    return category_share * weights / block_total


def _day_prices(world: World, day: date, drift: Drift) -> np.ndarray:
    if not drift.active(day, "price_shift"):
        return world.product_price
    prefixes, full_factor = PRICE_SHIFT
    factor = 1.0 + drift.magnitude * (full_factor - 1.0)
    shifted = np.array([c.code.startswith(prefixes) for c in CATEGORIES])[world.product_category]
    return np.where(shifted, np.round(world.product_price * factor, 2), world.product_price)


def _day_preferences(world: World, day: date, drift: Drift) -> np.ndarray:
    if not drift.active(day, "category_mix"):
        return world.preferences
    targets, full_weight = CATEGORY_MIX
    weight = drift.magnitude * full_weight
    target = np.array([c.code in targets for c in CATEGORIES], dtype=float)
    return (1 - weight) * world.preferences + weight * target / target.sum()


def behaviour_scales(day: date, drift: Drift) -> tuple[float, float]:
    """The day's multipliers of the cart rate and of purchase-after-cart (1, 1 without drift)."""
    if not drift.active(day, "behaviour_change"):
        return 1.0, 1.0
    return tuple(1.0 - drift.magnitude * (1.0 - full) for full in BEHAVIOUR_CHANGE)


def conversion_rates(
    propensity: np.ndarray, cart_scale: float = 1.0, buy_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """P(cart | view) and P(purchase | cart) of users with ``propensity`` on a day's scales."""
    cart = np.minimum(CART_RATE * propensity * cart_scale, 0.9)
    return cart, np.minimum((0.35 + 2.5 * propensity) * buy_scale, 0.95)


def _sessions(
    world: World,
    rng: np.random.Generator,
    n: int,
    preference_cdf: np.ndarray,
    drift_scales: tuple[float, float],
) -> dict[str, np.ndarray]:
    """``n`` sessions, flattened to events in session order (not yet time-sorted)."""
    cart_scale, buy_scale = drift_scales
    user = np.minimum(np.searchsorted(world.activity_cdf, rng.random(n)), len(world.user_ids) - 1)
    hour = rng.choice(24, n, p=HOURLY_TRAFFIC / HOURLY_TRAFFIC.sum())
    start = hour * 3600 + rng.integers(0, 3600, n)
    late_days = np.where(rng.random(n) < LATE_SESSION_SHARE, rng.integers(1, 3, n), 0)
    session_uuids = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16)
    views = np.minimum(rng.geometric(SESSION_VIEWS[0], n), SESSION_VIEWS[1])

    view_session = np.repeat(np.arange(n), views)
    view_user = user[view_session]
    n_views = len(view_session)
    roll = rng.random(n_views)[:, None]
    category = np.minimum((roll > preference_cdf[view_user]).sum(axis=1), len(CATEGORIES) - 1)
    product = _choose_products(world, view_user, category, rng.random(n_views))
    propensity = world.propensity[view_user]
    cart_rate, buy_rate = conversion_rates(propensity, cart_scale, buy_scale)
    carted = rng.random(n_views) < cart_rate
    bought = carted & (rng.random(n_views) < buy_rate)
    removed = carted & ~bought & (rng.random(n_views) < REMOVE_RATE)

    per_view = 1 + carted + (bought | removed)
    event_view = np.repeat(np.arange(n_views), per_view)
    step = np.arange(len(event_view)) - np.repeat(np.cumsum(per_view) - per_view, per_view)
    kind = np.where(step == 0, 0, np.where(step == 1, 1, np.where(bought[event_view], 3, 2)))
    # Reading a product page takes longer than clicking "add to cart" or "buy".
    gap = np.where(step == 0, rng.integers(5, 180, len(step)), rng.integers(2, 40, len(step)))
    event_session = view_session[event_view]
    elapsed = np.cumsum(gap) - gap
    first = np.searchsorted(event_session, np.arange(n))
    offset = elapsed - elapsed[first[event_session]]
    last_offset = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_offset, event_session, offset)
    # A session ends by midnight, so a day's file never holds events of the following day.
    start = np.minimum(start, _SECONDS_PER_DAY - 1 - last_offset) - late_days * _SECONDS_PER_DAY
    return {
        "second": start[event_session] + offset,
        "kind": kind,
        "product": product[event_view],
        "user": user[event_session],
        "session": event_session,
        "uuid": session_uuids,
    }


def _day_events(
    world: World, seed: int, day: date, events_per_day: int, drift: Drift
) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """The day's event columns (session order, truncated at the day's volume) and batches."""
    rng = np.random.default_rng([seed, _DAY_STREAM, day.toordinal()])
    target = round(events_per_day * WEEKDAY_VOLUME[day.weekday()])
    preference_cdf = np.cumsum(_day_preferences(world, day, drift), axis=1)
    scales = behaviour_scales(day, drift)
    batches, total = [], 0
    while total < target:
        # ~4 events per session on average: one batch nearly always covers the day.
        batch = _sessions(world, rng, target // 3 + 16, preference_cdf, scales)
        batches.append(batch)
        total += len(batch["second"])
    first_session = np.cumsum([0] + [len(b["uuid"]) for b in batches[:-1]])
    for batch, first in zip(batches, first_session, strict=True):
        batch["session"] = batch["session"] + first
    columns = {
        key: np.concatenate([b[key] for b in batches])[:target]
        for key in ("second", "kind", "product", "user", "session")
    }
    return columns, batches


def generate_day(
    world: World, seed: int, day: date, events_per_day: int, drift: Drift = Drift()
) -> list[str]:
    """The day's events as REES46 CSV lines (no header), sorted by event time."""
    columns, batches = _day_events(world, seed, day, events_per_day, drift)
    order = np.argsort(columns["second"], kind="stable")
    midnight = np.datetime64(datetime(day.year, day.month, day.day), "s")
    seconds = midnight + columns["second"][order].astype("timedelta64[s]")
    stamps = [f"{s[:10]} {s[11:]} UTC" for s in np.datetime_as_string(seconds).tolist()]
    sessions = _uuid4_strings(np.concatenate([b["uuid"] for b in batches]))
    prices = [f"{p:.2f}" for p in _day_prices(world, day, drift).tolist()]
    products = [
        f"{pid},{cid},{CATEGORIES[c].code},{brand}"
        for pid, cid, c, brand in zip(
            world.product_ids.tolist(),
            world.category_ids[world.product_category].tolist(),
            world.product_category.tolist(),
            world.product_brand,
            strict=True,
        )
    ]
    users = [str(u) for u in world.user_ids.tolist()]
    return [
        f"{stamp},{EVENT_TYPES[k]},{products[p]},{prices[p]},{users[u]},{sessions[s]}"
        for stamp, k, p, u, s in zip(
            stamps,
            *(columns[key][order].tolist() for key in ("kind", "product", "user", "session")),
            strict=True,
        )
    ]


def _uuid4_strings(random_bytes: np.ndarray) -> list[str]:
    """RFC 4122 version-4 UUIDs from rows of 16 random bytes (what ``uuid.uuid4`` does)."""
    raw = random_bytes.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = raw.tobytes().hex()
    return [
        f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        for h in (digits[i : i + 32] for i in range(0, len(digits), 32))
    ]


def to_csv(lines: list[str], compress: bool = False) -> bytes:
    """A file's bytes: the REES46 header, the lines, ``\\n`` endings; gzip without a timestamp."""
    content = "".join(f"{line}\n" for line in (HEADER, *lines)).encode("utf-8")
    return gzip.compress(content, mtime=0) if compress else content


def activity_share(world: World) -> np.ndarray:
    """Each user's probability of being the user of a session (``gamma(1.2)`` activity)."""
    return np.diff(world.activity_cdf, prepend=0.0)


def ground_truth_csv(world: World) -> bytes:
    """``user_id,purchase_propensity,activity_share``: what each user's behaviour is drawn from.

    ``activity_share`` is the probability that a session of any day is the user's; with the
    days' truth (``clickstream.sources.ground_truth``) it gives each user's true probability of
    a purchase.
    """
    lines = ["user_id,purchase_propensity,activity_share"]
    lines += [
        f"{u},{p:.6f},{a:.9e}"
        for u, p, a in zip(world.user_ids, world.propensity, activity_share(world), strict=True)
    ]
    return "".join(f"{line}\n" for line in lines).encode("utf-8")
