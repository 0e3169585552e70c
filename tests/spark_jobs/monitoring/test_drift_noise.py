"""The per-column noise floor of the drift comparison (``drift_report.noise_floor``): a column's
threshold is ``max(STATTEST_THRESHOLD, floor)``, the floor being the largest normed Wasserstein
distance of ``NOISE_DRAWS`` relabellings of the two samples pooled. Pandas and Evidently only:
no Spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clickstream.core.contracts import FEATURE_COLUMNS
from clickstream.monitoring.drift_report import STATTEST_THRESHOLD, compare, noise_floor

SPARSE = "avg_price_bought_1d"  # filled by the few users who bought that day
DENSE = "views_1d"


def _normed(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's normed Wasserstein distance, recomputed with scipy."""
    return stats.wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001)


def _brute_force(reference: np.ndarray, current: np.ndarray, draws: int, seed: int) -> np.ndarray:
    pooled = np.concatenate([reference, current])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        shuffled = rng.permutation(pooled)
        out.append(_normed(shuffled[: len(reference)], shuffled[len(reference) :]))
    return np.array(out)


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n: rng.poisson(1.2, n).astype(float),  # counts: every value kept exactly
        lambda rng, n: rng.lognormal(3.0, 1.0, n),  # prices: binned to NOISE_GRID quantiles
    ],
    ids=["counts", "prices"],
)
def test_the_floor_is_the_tail_of_a_brute_force_permutation_test(draw):
    rng = np.random.default_rng(7)
    reference, current = draw(rng, 3000), draw(rng, 2000)
    null = _brute_force(reference, current, 2000, seed=8)
    floor = noise_floor(pd.Series(reference), pd.Series(current))
    # The largest of 400 draws sits in the null's upper tail: above its 95th percentile, and
    # not beyond what 2000 relabellings reach by much (the binning of prices only shrinks it).
    assert np.quantile(null, 0.95) < floor < 1.25 * null.max()
    # Nulls are left out: the floor of the values alone.
    with_nulls = pd.Series(np.concatenate([reference, np.full(500, np.nan)]))
    assert noise_floor(with_nulls, pd.Series(current)) == floor


def test_a_constant_or_empty_side_has_no_floor():
    assert noise_floor(pd.Series([2.0] * 50), pd.Series([2.0] * 80)) == 0.0
    assert noise_floor(pd.Series([np.nan] * 5), pd.Series([1.0, 2.0])) == 0.0


def _frame(rng: np.random.Generator, rows: int, *, buyers: float, shift: float = 0.0):
    """Feature rows: dense counts (``DENSE`` moved by ``shift`` of its spread) and a sparse
    purchase price that only ``buyers`` of the rows fill."""
    data = {c: rng.poisson(3.0, rows).astype(float) for c in FEATURE_COLUMNS}
    data[DENSE] = rng.normal(10.0 + shift * 2.0, 2.0, rows)
    bought = rng.random(rows) < buyers
    data[SPARSE] = np.where(bought, rng.lognormal(3.0, 1.0, rows), np.nan)
    return pd.DataFrame(data)


def test_a_sparse_column_moved_by_sampling_noise_alone_is_not_drift():
    """Same distribution on both sides, 150 buyers a side: the sparse price moves past 0.075 by
    chance, and its floor (what relabelling the same rows gives) keeps it from drifting."""
    rng = np.random.default_rng(3)
    reference, current = _frame(rng, 5000, buyers=0.03), _frame(rng, 5000, buyers=0.03)
    result = compare(reference, current, 0.046, scores=False).columns[SPARSE]
    assert result["score"] >= STATTEST_THRESHOLD  # above the material distance ...
    assert result["noise_floor"] > result["score"]  # ... but within the noise of 150 buyers
    assert result["threshold"] == result["noise_floor"] and result["drifted"] is False


def test_a_real_shift_drifts_and_a_dense_column_keeps_the_calibrated_threshold():
    rng = np.random.default_rng(4)
    reference = _frame(rng, 20000, buyers=0.03)
    current = _frame(rng, 20000, buyers=0.03, shift=0.25)  # a quarter of a spread
    comparison = compare(reference, current, 0.046, scores=False)
    dense = comparison.columns[DENSE]
    assert dense["noise_floor"] < STATTEST_THRESHOLD  # 20 000 rows: noise far below 0.075
    assert dense["threshold"] == STATTEST_THRESHOLD and dense["drifted"] is True
    assert dense["score"] > 0.2
    # The unshifted dense columns stay below their thresholds: only DENSE drifted.
    assert [c for c, r in comparison.columns.items() if r["drifted"]] == [DENSE]
    # A sparse column drifts too when it moves by more than its floor.
    moved = reference.copy()
    moved[SPARSE] = moved[SPARSE] * 1.5
    sparse = compare(reference, moved.sample(frac=1.0, random_state=1), 0.046, scores=False)
    assert sparse.columns[SPARSE]["drifted"] is True
    assert sparse.columns[SPARSE]["score"] > sparse.columns[SPARSE]["noise_floor"]


def test_the_draws_are_seeded():
    rng = np.random.default_rng(5)
    a, b = pd.Series(rng.normal(size=800)), pd.Series(rng.normal(size=600))
    assert noise_floor(a, b, seed=1) == noise_floor(a, b, seed=1)  # the same on a rerun
    assert noise_floor(a, b, seed=1) != noise_floor(a, b, seed=2)  # and really drawn
