"""The dates of ``make run``: which days are loaded in one job, which the DAGs run."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ecom_airflow.config import LOCAL
from tools.run_system import Story

TODAY = date(2026, 11, 24)


def test_the_default_story_is_last_month_with_warmup_and_the_dags_take_the_last_days():
    story = Story.build(None, warmup_days=14, drift_day=8, today=TODAY, airflow_days=2)
    assert (story.month_start, story.month_end) == (date(2026, 10, 1), date(2026, 10, 31))
    assert story.days[0] == "2026-09-17" and story.days[-1] == "2026-10-31"
    assert story.airflow_days == ["2026-10-30", "2026-10-31"]
    assert story.history == story.days[:-2], "every day is loaded or run, none twice, none lost"
    assert story.drift_start == date(2026, 10, 8)
    # The seed training's labelled windows end (as of - label horizon) before the drift.
    assert story.seed_as_of - timedelta(days=LOCAL.label_horizon_days) < story.drift_start
    assert story.seed_as_of.isoformat() in story.history


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"month": "2026-11"}, "has not ended yet"),
        ({"drift_day": 32}, "--drift-day must be a day of 2026-10"),
        ({"airflow_days": 0}, "--airflow-days must be 1..31"),
        ({"warmup_days": 0, "airflow_days": 25}, "too few to train"),
    ],
)
def test_impossible_stories_are_refused_with_the_option_to_change(kwargs, message):
    arguments = {"month": None, "warmup_days": 14, "drift_day": 8, "airflow_days": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        Story.build(today=TODAY, **arguments)
