"""The generator's item-level taste: products inside a category follow each user's factors, the
true probabilities it reports are the ones it draws from, and nothing else of the world moved."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import numpy as np
import pytest

from clickstream.sources import synthetic
from clickstream.sources.synthetic import (
    CATEGORIES,
    Drift,
    _category_blocks,
    _choose_products,
    build_world,
    generate_day,
    to_csv,
    view_probabilities,
)

DAY = date(2019, 10, 1)
DRAWS = 100_000


@pytest.fixture(scope="module")
def world():
    return build_world(seed=7, users=500)


def _in_category(world, user: int, category: int) -> tuple[np.ndarray, np.ndarray]:
    """Drawn and true shares of each product of ``category`` for ``user``."""
    rng = np.random.default_rng(0)
    users = np.full(DRAWS, user)
    drawn = _choose_products(world, users, np.full(DRAWS, category), rng.random(DRAWS))
    first, last = _category_blocks(world)
    block = slice(first[category], last[category] + 1)
    observed = np.bincount(drawn, minlength=len(world.product_ids))[block] / DRAWS
    truth = view_probabilities(world, np.array([user]), DAY)[0, block]
    return observed, truth / truth.sum()


def test_products_are_drawn_with_the_probabilities_reported(world):
    for user in (0, 1, 2):
        observed, truth = _in_category(world, user, 0)
        # A share's standard error is at most 0.5 / sqrt(DRAWS) = 0.0016.
        assert np.abs(observed - truth).max() < 0.01


def test_users_differ_in_taste_inside_a_category(world):
    drawn = [_in_category(world, user, 0)[0] for user in range(10)]
    distances = [0.5 * np.abs(a - b).sum() for a, b in pairwise(drawn)]
    # The users draw with the same rolls: without taste they would pick the same products
    # (distance 0); with it, their favourites differ.
    assert np.mean(distances) > 0.1


def test_true_probabilities_sum_to_one_and_follow_the_days_preferences(world):
    users = np.arange(50)
    plain = view_probabilities(world, users, DAY)
    assert plain.sum(axis=1) == pytest.approx(np.ones(50))
    shifted = view_probabilities(world, users, DAY, Drift("category_mix", DAY))
    target = [i for i, c in enumerate(CATEGORIES) if c.code in synthetic.CATEGORY_MIX[0]]
    in_target = np.isin(world.product_category, target)
    assert (shifted[:, in_target].sum(axis=1) > plain[:, in_target].sum(axis=1) + 0.3).all()


def test_a_day_does_not_depend_on_how_the_users_are_chunked(world, monkeypatch):
    whole = to_csv(generate_day(world, 7, DAY, 3000))
    monkeypatch.setattr(synthetic, "_TASTE_CELLS", 1_000)  # a few users per chunk
    assert to_csv(generate_day(world, 7, DAY, 3000)) == whole


def test_taste_has_its_own_random_stream(world, monkeypatch):
    monkeypatch.setattr(synthetic, "TASTE_RANK", 2)
    other = build_world(seed=7, users=500)
    for name in ("product_ids", "product_price", "product_popularity", "user_ids", "propensity"):
        assert np.array_equal(getattr(other, name), getattr(world, name)), name
    assert np.array_equal(other.preferences, world.preferences)
    assert other.user_factors.shape == (500, 2)
    # More users never change the factors of the first ones (drawn after the items').
    monkeypatch.undo()
    assert np.array_equal(build_world(seed=7, users=600).user_factors[:500], world.user_factors)
