"""The propensity model's judgments on simulated worlds (numpy, pandas, DuckDB, scikit-learn;
no Spark): the oracle is an upper bound, metrics mean what they say, per-user intervals, and
promotion with error bars (an A/A replay rarely promotes, a real gain does)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from clickstream.models.promotion import decide
from clickstream.models.propensity.candidates import candidates
from clickstream.models.propensity.data import features_frame
from clickstream.models.propensity.evaluation import (
    bootstrap_aucs,
    bootstrap_eces,
    expected_calibration_error,
    interval,
    lift_capture,
    metrics,
    oracle_auc,
    oracle_scores,
    recency_baseline,
)
from clickstream.models.propensity.training import judge
from tests.support.simulated import labelled_features, simulate, truth_frame

HORIZON = 7
MARGIN, TOLERANCE = 0.002, 0.02  # the job's defaults


# -- metrics on raw scores ----------------------------------------------------------------------


def test_the_reported_auc_is_scikit_learns_on_the_raw_scores():
    # Scores within 1e-6 of 1 would all tie if clipped into [1e-6, 1 - 1e-6] before the AUC.
    y = np.array([0, 1, 0, 1, 1, 0, 1, 1])
    p = 1.0 - np.array([1e-7, 1e-8, 3e-7, 1e-9, 5e-1, 9e-1, 1e-10, 2e-8])
    reported = metrics(y, p)["roc_auc"]
    assert reported == roc_auc_score(y, p)
    assert reported != roc_auc_score(y, np.clip(p, 1e-6, 1 - 1e-6))
    assert np.isfinite(metrics(y, p)["log_loss"])  # clipped there only


def test_the_recency_baseline_is_a_probability_that_ranks_as_its_raw_score():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {
            "days_since_last_view": np.where(
                rng.random(500) < 0.2, np.nan, rng.integers(0, 3, 500)
            ),
            "purchases_30d": rng.poisson(3.0, 500).astype(float),
        }
    )
    raw = 1 / (1 + x["days_since_last_view"].fillna(31.0)) + 0.1 * np.log1p(x["purchases_30d"])
    assert (raw >= 1).mean() > 0.2  # clipping would have tied these
    y = (rng.random(500) < raw / raw.max()).astype(int)
    score = recency_baseline(x)
    assert ((score > 0) & (score < 1)).all()
    assert metrics(y, score)["roc_auc"] == pytest.approx(roc_auc_score(y, raw), abs=1e-12)


def test_metrics_refuse_scores_that_are_not_probabilities():
    with pytest.raises(ValueError, match="squash or rank"):
        metrics(np.array([0, 1]), np.array([0.5, 1.3]))


# -- per-user bootstrap -------------------------------------------------------------------------


def test_the_bootstrap_resamples_users_not_rows():
    """Each user repeated on 5 feature dates: resampling users keeps the interval as wide as
    one copy's, resampling rows (each row its own "user") would shrink it by about sqrt(5)."""
    rng = np.random.default_rng(1)
    users = np.arange(400)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(int)
    one = bootstrap_aucs(users, y, {"m": p}, replicates=300)["m"].std()
    repeated = (np.tile(users, 5), np.tile(y, 5), np.tile(p, 5))
    per_user = bootstrap_aucs(repeated[0], repeated[1], {"m": repeated[2]}, 300)["m"].std()
    per_row = bootstrap_aucs(np.arange(2000), repeated[1], {"m": repeated[2]}, 300)["m"].std()
    assert per_user == pytest.approx(one, rel=0.25)
    assert per_row < 0.7 * per_user
    # Weighted by the draw, each replicate is scikit-learn's AUC of the resampled rows.
    assert bootstrap_aucs(users, y, {"m": p}, replicates=1)["m"][0] == pytest.approx(
        _first_replicate_auc(users, y, p), abs=1e-12
    )


def test_the_calibration_bootstrap_is_the_weighted_ece_of_the_same_draws():
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(300), 2)
    p = rng.random(600)
    y = (rng.random(600) < p).astype(int)
    miscalibrated = np.clip(p + 0.15, 0, 1)
    reps = bootstrap_eces(users, y, {"good": p, "bad": miscalibrated}, replicates=200)
    high = interval(reps["good"] - reps["bad"])[1]
    assert high < -0.05  # a shift of 0.15 is seen beyond noise
    assert reps["good"].mean() == pytest.approx(expected_calibration_error(y, p), abs=0.03)
    # One replicate is the ECE of the resampled rows (each user's rows weighted by its draws).
    draw = np.random.default_rng(0).integers(0, 300, 300)
    rows = np.concatenate([np.flatnonzero(users == u) for u in draw])
    one = bootstrap_eces(users, y, {"good": p}, replicates=1)["good"][0]
    assert one == pytest.approx(expected_calibration_error(y[rows], p[rows]), abs=1e-12)


def _first_replicate_auc(users, y, p) -> float:
    draw = np.random.default_rng(0).integers(0, len(users), len(users))
    weight = np.bincount(draw, minlength=len(users))
    return roc_auc_score(y, p, sample_weight=weight)


# -- the promotion rule with error bars ---------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "calibration", "calibration_interval", "promote"),
    [
        ((0.004, 0.02), (0.02, 0.02), (-0.005, 0.005), True),
        # The point gain clears the margin, the bound not.
        ((0.001, 0.02), (0.02, 0.02), (-0.005, 0.005), False),
        # Ranks better, serves worse probabilities.
        ((0.004, 0.02), (0.08, 0.02), (0.05, 0.07), False),
        ((0.004, 0.02), (0.035, 0.02), (0.01, 0.02), True),  # within the calibration tolerance
        # The ranking barely moved but the reference's probabilities are off: recalibrate.
        ((-0.005, 0.006), (0.017, 0.164), (-0.16, -0.13), True),
        # Surely better calibrated by 0.02 and more, even from a reference at 0.06.
        ((-0.005, 0.006), (0.017, 0.06), (-0.05, -0.03), True),
        # Better calibrated, but ranks materially worse: keep the reference.
        ((-0.03, -0.01), (0.017, 0.164), (-0.16, -0.13), False),
        # A calibration gain that noise could give does not outweigh a noisy ranking.
        ((-0.005, 0.006), (0.017, 0.04), (-0.04, -0.005), False),
        # Without a calibration interval, calibration alone never promotes.
        ((-0.005, 0.006), (0.017, 0.164), None, False),
    ],
    ids=[
        "clear-gain",
        "noisy-gain",
        "miscalibrated",
        "calibration-within-tolerance",
        "recalibrates",
        "recalibrates-a-moderate-error",
        "recalibrates-but-ranks-worse",
        "noisy-calibration-gain",
        "no-calibration-interval",
    ],
)
def test_promotion_needs_the_interval_above_the_margin_and_calibration(
    interval, calibration, calibration_interval, promote
):
    decision = decide(
        0.812,
        champion_auc=0.80,
        champion_version="4",
        baseline_auc=0.7,
        margin=MARGIN,
        delta_interval=interval,
        calibration=calibration,
        calibration_tolerance=TOLERANCE,
        calibration_interval=calibration_interval,
    )
    assert decision.promote is promote
    assert f"{interval[0]:+.4f}" in decision.reason and "calibration" in decision.reason


# -- simulated worlds: oracle, A/A replay, a real gain -----------------------------------------


def _dates(first, n):
    return [first + timedelta(days=k) for k in range(n)]


def _oracle_and_lr(seed: int) -> tuple[float, float, float]:
    """(oracle AUC, LR AUC, paired SE of their difference) on one world's validation rows."""
    sim = simulate(seed, 57, users=200, events_per_day=1400)
    first = sim.start + timedelta(days=29)  # the first mature feature date
    train = labelled_features(sim, _dates(first, 7), HORIZON)
    validation = labelled_features(sim, _dates(first + timedelta(days=14), 7), HORIZON)
    model = candidates()["logistic_regression"].fit(features_frame(train), train["purchased"])
    y = validation["purchased"].to_numpy()
    scores = {
        "lr": model.predict_proba(features_frame(validation))[:, 1],
        "oracle": oracle_scores(validation, truth_frame(sim), sim.days, HORIZON),
    }
    reps = bootstrap_aucs(validation["user_id"].to_numpy(), y, scores, replicates=200, seed=seed)
    se = float(np.std(reps["oracle"] - reps["lr"], ddof=1))
    return oracle_auc(y, scores["oracle"]), metrics(y, scores["lr"])["roc_auc"], se


def test_the_oracle_is_at_least_a_fitted_logistic_regression_across_seeds():
    """20 worlds. Allowance: 3 paired per-user bootstrap SEs of the difference (about 0.01 on
    ~1,400 validation rows of 200 users), so sampling noise alone fails a seed with
    probability ~0.1%; a score that is not the Bayes score (propensity alone) loses to the LR
    on most seeds (measured: 0.79 vs 0.83 on the make run data)."""
    results = [_oracle_and_lr(seed) for seed in range(20)]
    for oracle, lr, se in results:
        assert oracle >= lr - 3 * se
        assert lift_capture(lr, oracle) <= 1 + 3 * se / (oracle - 0.5)
    gaps = np.array([oracle - lr for oracle, lr, _ in results])
    assert gaps.mean() > 0


def _replay_rows():
    """One world's labelled rows for 30 replayed as-of dates of 7 training dates and a
    4-date validation window (2 selection, 2 evaluation)."""
    sim = simulate(11, 29 + 7 + HORIZON + 4 + 30 + HORIZON + 1, users=200, events_per_day=1400)
    first = sim.start + timedelta(days=29)
    rows = labelled_features(sim, _dates(first, 7 + HORIZON + 1 + 4 + 29), HORIZON)
    return first, rows


@pytest.fixture(scope="module")
def replay():
    return _replay_rows()


def _split(rows: pd.DataFrame, first, day: int):
    dates = rows["feature_date"].dt.date
    train_start = first + timedelta(days=day)
    selection = train_start + timedelta(days=7 + HORIZON + 1)
    evaluation = selection + timedelta(days=2)

    def window(start, n):
        return rows[(dates >= start) & (dates < start + timedelta(days=n))]

    return window(train_start, 7), window(selection, 2), window(evaluation, 2)


def _best_of_seeds(train, selection, seeds, forests=None):
    """Per seed, the job's candidates (a smaller forest, for speed) and the best of them on the
    selection split. The logistic regression does not depend on the seed: fitted once. The
    fitted forests are appended to ``forests`` when given."""
    x = features_frame(train)
    logistic = candidates()["logistic_regression"].fit(x, train["purchased"])
    best = []
    for seed in seeds:
        forest = candidates(seed)["random_forest"].set_params(
            model__n_estimators=40, model__n_jobs=1
        )
        fitted = [logistic, forest.fit(x, train["purchased"])]
        if forests is not None:
            forests.append(fitted[1])
        best.append(
            max(
                fitted,
                key=lambda m: roc_auc_score(
                    selection["purchased"], m.predict_proba(features_frame(selection))[:, 1]
                ),
            )
        )
    return best


def _judge(evaluation, champion, challenger, seed: int):
    x = features_frame(evaluation)
    scores = {
        "challenger": challenger.predict_proba(x)[:, 1],
        "champion": champion.predict_proba(x)[:, 1],
        "baseline": recency_baseline(x),
    }
    return judge(
        evaluation["purchased"].to_numpy(),
        evaluation["user_id"].to_numpy(),
        scores,
        champion_version="1",
        margin=MARGIN,
        calibration_tolerance=TOLERANCE,
        replicates=200,
        seed=seed,
    )


def test_an_a_a_replay_promotes_on_at_most_5_percent_of_30_days(replay):
    """Champion and challenger: the same procedure on identical data, another seed. When the
    logistic regression wins both the models are equal (a trivial A/A), so the forests of the
    two seeds, which always differ, are replayed as well."""
    first, rows = replay
    promoted = {"procedure": 0, "forest": 0}
    point_wins = 0  # what the old rule (point gain >= margin, no interval) would promote
    for day in range(30):
        train, selection, evaluation = _split(rows, first, day)
        forests = []
        champion, challenger = _best_of_seeds(train, selection, (0, 1), forests)
        judged = _judge(evaluation, champion, challenger, day).decision
        promoted["procedure"] += judged.promote
        point_wins += judged.delta >= MARGIN
        promoted["forest"] += _judge(evaluation, *forests, day).decision.promote
    assert promoted["procedure"] <= 1 and promoted["forest"] <= 1  # 5% of 30 days
    assert point_wins >= 3  # the same replay with a point-estimate rule swaps on noise


def test_a_genuinely_better_challenger_is_promoted(replay):
    """The champion saw only two view features; the challenger all of them: promoted on each
    of 5 replayed days. The same gain with probabilities made uncalibrated (squared) is not."""
    first, rows = replay
    narrow_columns = ["views_30d", "days_since_last_view"]
    for day in range(0, 30, 6):
        train, selection, evaluation = _split(rows, first, day)
        narrow = candidates(0)["logistic_regression"].set_params(features="passthrough")
        narrow = _Columns(narrow, narrow_columns).fit(train)
        (challenger,) = _best_of_seeds(train, selection, (0,))
        judged = _judge(evaluation, narrow, challenger, day)
        assert judged.decision.promote, judged.decision.reason
        squared = _judge(evaluation, narrow, _Squared(challenger), day)
        assert squared.decision.delta > 0 and not squared.decision.promote


class _Columns:
    """A pipeline that sees only some feature columns (NaN as 31 days)."""

    def __init__(self, pipeline, columns):
        self.pipeline, self.columns = pipeline, columns

    def _x(self, x):
        return x[self.columns].astype("float64").fillna(31.0)

    def fit(self, rows):
        self.pipeline.fit(self._x(rows), rows["purchased"])
        return self

    def predict_proba(self, x):
        return self.pipeline.predict_proba(self._x(x))


class _Squared:
    """The same ranking as ``model``, with every probability squared (miscalibrated)."""

    def __init__(self, model):
        self.model = model

    def predict_proba(self, x):
        p = self.model.predict_proba(x)[:, 1] ** 2
        return np.column_stack([1 - p, p])
