"""What the end-to-end tests share besides fixtures: the dates of the shared backfill, and
backfilling the daily chain."""

from __future__ import annotations

import functools
from pathlib import Path

from local.story.story import PIPELINES, prune_unplanned_runs, run_backfills

# The shared backfill's dates (tests/e2e/conftest.py): two clean days, then a day whose bronze
# only warns at the quality gate and a day the gate blocks (last, so no later date of the chain
# follows a blocked one). No other test backfills these dates.
BACKFILL_DAYS = ["2019-10-01", "2019-10-02"]
WARNING_DAY, BLOCKING_DAY = "2019-10-03", "2019-10-04"
# DAGs the e2e stack loads beside the project's, as a bundle of their own (StackConfig.test_dags):
# each stands in for a pipeline where a test needs one it can make slow or fail at will.
STACK_TEST_DAGS = Path(__file__).resolve().parent / "stack_dags"
STACK_TEST_DAG_IDS = (
    "e2e_deadline_alert",  # tests/support/stack_dags/deadline_alert.py
    "e2e_worker_kill",  # tests/support/stack_dags/worker_kill.py
)
HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def backfill_chain(airflow, days: list[str]) -> dict[str, list[dict]]:
    """Backfill ``days`` on the daily chain, as from the UI, and wait for every run; the
    scheduled run the scheduler creates for yesterday on unpause (no data was generated for
    it) is stopped, as ``make run`` does, so it cannot hold the single active-run slot of
    ``offline_feature_table``."""
    prune = functools.partial(prune_unplanned_runs, airflow, PIPELINES, set(days))
    return run_backfills(airflow, PIPELINES, days, timeout_minutes=20, on_poll=prune)
