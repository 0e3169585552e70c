"""The loop after a behaviour change (``local/simulations/behaviour_recovery.py``), on a short
timeline: the monitor stays quiet while the world is unchanged, fires once the change reaches the
served scores, and the retraining it triggers serves a better calibrated champion.

The full timeline (make run's volume, 70 days after the change) and its figures are in
``docs/behaviour_recovery.md``; this run is 80% of the volume and 34 days, through the same
code (generation, DuckDB features and labels, the training's candidates, promotion rule and
refit, the monitor's decay rule, cooldown and superseded check).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from itertools import pairwise

import pytest

from local.simulations import behaviour_recovery as recovery
from tests.support.generated import assert_committed


@pytest.fixture(scope="module")
def short():
    # The fewest users whose days reach performance_min_rows (2,000 labelled rows).
    config = recovery.RecoveryConfig(
        users=2_400, events_per_day=16_000, quiet_days=14, days_after=34
    )
    return recovery.simulate(config, log=lambda m: None)


@pytest.mark.spark  # not Spark, but two minutes of generation, DuckDB and scikit-learn
def test_the_monitor_is_quiet_before_the_change_and_fires_after_it(short):
    config, result = short.config, recovery.outcome(short)
    assert result["quiet_dates"] >= 5 and result["quiet_alarms"] == 0, short.measured
    first = date.fromisoformat(result["first_trigger"])
    # The first score date whose labels see the change is the drift's start minus the horizon;
    # nothing fires before it, and a full-magnitude change is caught within two weeks.
    fired = next(m for m in short.measured if m["decision"] == "trigger_retraining")
    assert date.fromisoformat(fired["score_date"]) + timedelta(days=config.horizon_days) >= (
        config.drift_start
    )
    assert 0 <= (first - config.drift_start).days <= 14
    # No retraining within the cooldown of the last one, and none for a superseded version.
    triggers = [
        date.fromisoformat(m["measured_on"])
        for m in short.measured
        if m["decision"] == "trigger_retraining"
    ]
    assert all(b - a >= timedelta(days=config.cooldown_days) for a, b in pairwise(triggers))
    assert {m["decision"] for m in short.measured} >= {"healthy", "trigger_retraining", "cooldown"}


@pytest.mark.spark
def test_the_retrained_champion_is_calibrated_again(short):
    result = recovery.outcome(short)
    assert result["promotions"] >= 1 and result["final_version"] != "1"
    stale = [m["ece"] for m in short.measured if m["version"] == 1 and m["decision"] != "healthy"]
    final = short.versions[result["final_version"]]
    # The stale champion's decayed dates against the new champion's whole service, pooled.
    assert final["ece"] < 0.5 * min(stale), (final, stale)
    assert abs(final["mean_score"] - final["base_rate"]) < 0.05


def test_the_committed_page_is_generated_from_the_stored_timeline():
    data = json.loads(recovery.RESULTS.read_text(encoding="utf-8"))
    regenerate = "python -m local.simulations.behaviour_recovery"
    assert_committed("docs/behaviour_recovery.md", recovery.markdown(data), regenerate)
    result = recovery.outcome(
        recovery.Timeline(
            recovery.RecoveryConfig(), data["measured"], data["trainings"], data["versions"]
        )
    )
    assert result["quiet_alarms"] == 0 and result["met"], result
