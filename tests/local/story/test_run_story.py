"""The dates of ``make run``: which days are loaded in one job, which the DAGs run."""

from __future__ import annotations

from datetime import date

import pytest

from clickstream.core import maturity
from clickstream.models.propensity.data import Windows
from ecom_airflow import config
from ecom_airflow.config import LOCAL
from local.story.cli import earlier_run, plan, record_run
from local.story.story import Events, Story
from local.story.summary import print_story, print_trainings, quality_bars, story_checks

TODAY = date(2026, 11, 24)


def test_the_default_story_is_last_month_with_warmup_and_the_dags_take_the_last_days():
    story = Story.build(None, warmup_days=None, drift_day=8, today=TODAY, airflow_days=2)
    assert (story.month_start, story.month_end) == (date(2026, 10, 1), date(2026, 10, 31))
    assert story.days[-1] == "2026-10-31"
    assert story.airflow_days == ["2026-10-30", "2026-10-31"]
    assert story.history == story.days[:-2], "every day is loaded or run, none twice, none lost"
    assert story.drift_start == date(2026, 10, 8)
    # The seed training trains before the drift, on mature windows only.
    assert story.seed_as_of < story.drift_start
    assert story.seed_as_of.isoformat() in story.history
    windows = Windows.build(
        story.seed_as_of.isoformat(),
        LOCAL.label_horizon_days,
        LOCAL.train_days,
        LOCAL.validation_days,
    )
    first = date.fromisoformat(story.days[0])
    maturity.require_mature("training", *windows.train, first)  # does not raise
    assert windows.train[0] == maturity.mature_from(first), "and no day of warm-up is wasted"


def test_the_first_training_history_the_dags_plan_is_the_training_jobs():
    assert config.MATURITY_DAYS == maturity.MATURITY_DAYS
    for env in (
        LOCAL,
        config.Environment(name="x", catalog="c", volume_root="/Volumes/x", new_cluster={}),
    ):
        windows = Windows.build(
            "2026-10-07", env.label_horizon_days, env.train_days, env.validation_days
        )
        assert env.first_training_days == windows.history_needed + maturity.MATURITY_DAYS - 1


def test_too_short_a_warmup_for_mature_windows_is_refused_with_the_fewest_days():
    fewest = LOCAL.first_training_days - 8 + 2
    Story.build(None, warmup_days=fewest, drift_day=8, today=TODAY, airflow_days=2)
    with pytest.raises(ValueError, match=f"use at least {fewest}"):
        Story.build(None, warmup_days=fewest - 1, drift_day=8, today=TODAY, airflow_days=2)


def test_a_second_run_reuses_a_finished_story_resumes_a_failed_one_and_refuses_another(
    tmp_path,
):
    story = Story.build(None, warmup_days=None, drift_day=8, today=TODAY, airflow_days=2)
    wanted = plan(story, Events(42, 20000, "behaviour_change"))
    record = tmp_path / "story.json"
    assert earlier_run(record, wanted) == "fresh"
    record_run(record, wanted, "running")
    assert earlier_run(record, wanted) == "resume"
    record_run(record, wanted, "failed")
    assert earlier_run(record, wanted) == "resume"
    record_run(record, wanted, "told")
    assert earlier_run(record, wanted) == "reuse"
    other = plan(story, Events(42, 20000, "none"))
    with pytest.raises(SystemExit, match=r"holds another story.*make clean"):
        earlier_run(record, other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"month": "2026-11"}, "has not ended yet"),
        ({"drift_day": 32}, "--drift-day must be a day of 2026-10"),
        ({"airflow_days": 0}, "--airflow-days must be 1..31"),
        ({"drift_day": 31, "airflow_days": 5}, "too few to train"),
        ({"warmup_days": 14}, "--warmup-days 14 is too few"),
    ],
)
def test_impossible_stories_are_refused_with_the_option_to_change(kwargs, message):
    arguments = {"month": None, "warmup_days": None, "drift_day": 8, "airflow_days": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        Story.build(today=TODAY, **arguments)


# -- the story's checks, on the figures MLflow and the drift sensor hand back -----------------

DRIFT = {"decision": "trigger_retraining", "detail": "drift share 0.77 >= 0.1"}


def _training(reason: str, decision: str, as_of: str, **metrics: float) -> dict:
    return {
        "tags": {
            "reason": reason,
            "decision": decision,
            "as_of": as_of,
            "decision_reason": f"{decision} by the rule",
            "challenger_version": "1",
            "champion_after": "1",
        },
        "metrics": {"challenger_roc_auc": 0.8, **metrics},
    }


FOUND = "the drift check found the injected drift (behaviour_change) and chose retraining"
NO_DRIFT = {"decision": "skip_retraining", "detail": "no drift: share 0.02 < 0.1"}


def _checks(
    decision: dict, trainings: list[dict], scenario: str = "behaviour_change"
) -> dict[str, tuple[bool, bool]]:
    return {c.name: (c.ok, c.required) for c in story_checks(decision, trainings, scenario)}


def test_the_whole_story_passes_every_check():
    trainings = [
        _training("schedule", "promoted", "2026-10-07"),
        _training("drift", "promoted", "2026-10-31", lift_capture=0.95),
    ]
    checks = _checks(DRIFT, trainings)
    assert all(ok for ok, _ in checks.values()) and len(checks) == 6
    assert print_story(story_checks(DRIFT, trainings)) is True


def test_with_no_drift_injected_the_story_needs_silence():
    quiet = [_training("schedule", "promoted", "2026-10-07", lift_capture=0.93)]
    checks = _checks(NO_DRIFT, quiet, "none")
    assert all(ok for ok, _ in checks.values())
    assert "with no drift injected, the drift check found none" in checks
    assert print_story(story_checks(NO_DRIFT, quiet, "none")) is True
    # A false alarm and the retraining it starts both fail the run.
    noisy = [*quiet, _training("drift", "promoted", "2026-10-31")]
    failed = {n for n, (ok, req) in _checks(DRIFT, noisy, "none").items() if req and not ok}
    assert failed == {
        "with no drift injected, the drift check found none",
        "with no drift injected, nothing was retrained",
    }


def test_a_champion_above_the_oracle_fails_the_run():
    trainings = [
        _training("schedule", "promoted", "2026-10-07"),
        _training("drift", "promoted", "2026-10-31", lift_capture=1.08),
    ]
    assert _checks(DRIFT, trainings)["the oracle bounds the champion (lift capture <= 1)"] == (
        False,
        True,
    )


@pytest.mark.parametrize(
    ("decision", "trainings", "missed"),
    [
        (
            {"decision": "skip_retraining", "detail": "below threshold"},
            [_training("schedule", "promoted", "2026-10-07")],
            {FOUND, "a retraining with reason=drift ran"},
        ),
        (
            DRIFT,
            [_training("schedule", "promoted", "2026-10-07")],
            {"a retraining with reason=drift ran"},
        ),
        (DRIFT, [], {"a first champion before the drift", "a retraining with reason=drift ran"}),
        (
            DRIFT,
            [
                _training("schedule", "kept", "2026-10-07"),
                _training("drift", "promoted", "2026-10-31"),
            ],
            {"a first champion before the drift"},
        ),
    ],
)
def test_a_missing_step_fails_the_run_and_is_named(decision, trainings, missed, capsys):
    checks = story_checks(decision, trainings)
    assert {c.name for c in checks if not c.ok and c.required} == missed
    assert print_story(checks) is False
    out = capsys.readouterr().out
    assert all(f"[MISSED] {name}" in out for name in missed)


def test_a_kept_champion_and_a_low_lift_are_reported_not_failed(capsys):
    trainings = [
        _training("schedule", "promoted", "2026-10-07"),
        _training("drift", "kept", "2026-10-31", lift_capture=0.7),
    ]
    checks = _checks(DRIFT, trainings)
    assert checks["the retrained model became champion"] == (False, False)
    assert checks["the champion captures >= 0.9 of the oracle's lift"] == (False, False)
    assert print_story(story_checks(DRIFT, trainings)) is True
    assert "[no    ] the retrained model became champion" in capsys.readouterr().out


def test_every_training_is_a_line_with_its_figures(capsys):
    print_trainings(
        [
            _training("schedule", "promoted", "2026-10-07", baseline_roc_auc=0.61),
            _training("drift", "promoted", "2026-10-31", champion_roc_auc=0.79, lift_capture=1.1),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    first = next(line for line in lines if line.lstrip().startswith("2026-10-07"))
    second = next(line for line in lines if line.lstrip().startswith("2026-10-31"))
    assert "0.6100" in first and first.split()[1] == "schedule" and "promoted" in first
    assert "0.7900" in second and "1.1000" in second and second.split()[1] == "drift"


@pytest.mark.parametrize(("decision", "expected"), [("promoted", 0.020), ("kept", 0.018)])
def test_the_quality_bars_are_the_serving_models(decision, expected):
    summary = {
        "metrics": {
            "challenger_roc_auc": 0.83,
            "champion_after_roc_auc": 0.81,
            "oracle_roc_auc": 0.79,
            "baseline_roc_auc": 0.60,
            "lift_capture": 1.07,
        },
        "recommender": {
            "tags": {"decision": decision},
            "metrics": {
                "precision_at_10": 0.020,
                "champion_precision_at_10": 0.018,
                "popularity_precision_at_10": 0.013,
            },
        },
    }
    bars = quality_bars(summary)
    assert bars["champion_roc_auc"] == 0.81  # the model serving after the decision
    assert bars["als_precision_at_10"] == expected
    assert (bars["lift_capture"], bars["popularity_precision_at_10"]) == (1.07, 0.013)
    assert quality_bars({}) == {}
