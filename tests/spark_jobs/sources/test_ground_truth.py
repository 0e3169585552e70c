"""The generator's ground truth: the recorded days and the true purchase probability (the
Bayes score of the label) checked against simulated purchases."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from clickstream.sources import synthetic
from clickstream.sources.ground_truth import (
    DayTruth,
    day_truth,
    day_truth_of_lines,
    days_csv,
    label_probability,
    no_purchase_in_session,
    parse_days_csv,
)

START = date(2019, 10, 1)
HORIZON = 7
# 3 disjoint horizons (F = day 0, 7, 14): given the user, their labels are independent.
FEATURE_DAYS = (0, 7, 14)


def _simulated_labels(seed: int, users: int, drift: synthetic.Drift):
    """Per (feature date, user): did the generator's events hold a purchase in F+1..F+7?"""
    world = synthetic.build_world(seed, users)
    days, bought = {}, []
    for k in range(FEATURE_DAYS[-1] + HORIZON + 1):
        day = START + timedelta(days=k)
        columns, _ = synthetic._day_events(world, seed, day, 4 * users, drift)
        days[day] = day_truth(world, seed, day, 4 * users, drift)
        mask = np.zeros(users, dtype=bool)
        mask[np.unique(columns["user"][columns["kind"] == 3])] = True
        bought.append(mask)
    bought = np.array(bought)
    labels = np.concatenate([bought[f + 1 : f + HORIZON + 1].any(axis=0) for f in FEATURE_DAYS])
    dates = np.repeat([START + timedelta(days=f) for f in FEATURE_DAYS], users)
    propensity = np.tile(world.propensity, len(FEATURE_DAYS))
    share = np.tile(synthetic.activity_share(world), len(FEATURE_DAYS))
    return labels.astype(int), propensity, share, dates, days


@pytest.fixture(scope="module")
def simulated():
    """4 worlds of 500 users; behaviour change from day 10 (inside the second horizon)."""
    drift = synthetic.Drift("behaviour_change", START + timedelta(days=10))
    parts = [_simulated_labels(seed, 500, drift) for seed in range(4)]
    return parts


def _worst_decile_z(predicted: np.ndarray, observed: np.ndarray) -> float:
    """The largest |observed rate - mean prediction| per prediction decile, in binomial SEs."""
    order = np.argsort(predicted, kind="stable")
    worst = 0.0
    for rows in np.array_split(order, 10):
        p, y = predicted[rows], observed[rows]
        se = np.sqrt(np.sum(p * (1 - p))) / len(rows)
        worst = max(worst, abs(y.mean() - p.mean()) / se)
    return worst


def _scores(parts, days_of=lambda days: days):
    predicted, observed = [], []
    for labels, propensity, share, dates, days in parts:
        predicted.append(label_probability(propensity, share, dates, days_of(days), HORIZON))
        observed.append(labels)
    return np.concatenate(predicted), np.concatenate(observed)


def test_the_true_probability_matches_simulated_purchases_per_decile(simulated):
    # 6,000 rows, 600 a decile. 3.5 binomial SEs: a correct score fails one of 10 deciles by
    # chance with probability about 0.5%, while a wrong model of the generator misses by more.
    predicted, observed = _scores(simulated)
    assert _worst_decile_z(predicted, observed) < 3.5
    assert predicted.mean() == pytest.approx(observed.mean(), abs=0.02)


def test_the_check_rejects_a_score_that_ignores_the_behaviour_change(simulated):
    """The other direction: the same check fails a score that forgets the drift's scales."""

    def undrifted(days):
        return {d: DayTruth(d, t.sessions, 1.0, 1.0) for d, t in days.items()}

    predicted, observed = _scores(simulated, undrifted)
    assert _worst_decile_z(predicted, observed) > 3.5


def test_the_check_rejects_a_score_that_ignores_activity(simulated):
    """Propensity alone (every user as active as the average) misranks and miscalibrates."""
    parts = [
        (labels, propensity, np.full_like(share, share.mean()), dates, days)
        for labels, propensity, share, dates, days in simulated
    ]
    predicted, observed = _scores(parts)
    assert _worst_decile_z(predicted, observed) > 3.5


def test_day_truth_counts_the_sessions_of_the_days_file():
    world = synthetic.build_world(5, 200)
    drift = synthetic.Drift("behaviour_change", START, magnitude=0.5)
    lines = synthetic.generate_day(world, 5, START, 900, drift)
    truth = day_truth(world, 5, START, 900, drift)
    assert truth.sessions == len({line.rsplit(",", 1)[1] for line in lines})
    assert (truth.cart_scale, truth.buy_scale) == pytest.approx((0.75, 0.8))
    # generate_events counts them from the lines it wrote, without drawing the day again.
    assert day_truth_of_lines(lines, START, drift) == truth
    before = day_truth(world, 5, START - timedelta(days=1), 900, drift)
    assert (before.cart_scale, before.buy_scale) == (1.0, 1.0)


def test_days_csv_round_trips_and_a_missing_day_is_named():
    days = [DayTruth(START + timedelta(days=k), 100 + k, 1.0, 0.6) for k in (1, 0)]
    parsed = parse_days_csv(days_csv(days).decode())
    assert list(parsed) == [START, START + timedelta(days=1)]
    assert parsed[START] == days[1]
    with pytest.raises(ValueError, match="header"):
        parse_days_csv("day,sessions\n")
    with pytest.raises(KeyError, match="2019-10-03"):
        label_probability(np.array([0.1]), np.array([0.01]), [START], parsed, 2)


def test_no_purchase_in_session_is_the_expectation_over_capped_geometric_views():
    rng = np.random.default_rng(0)
    views = np.minimum(rng.geometric(synthetic.SESSION_VIEWS[0], 400_000), 30)
    for q in (0.0, 0.05, 0.3):
        assert no_purchase_in_session(np.array([q]))[0] == pytest.approx(
            np.mean((1 - q) ** views), abs=0.002
        )
