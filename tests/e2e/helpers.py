"""What the end-to-end tests share besides fixtures: the landing Volume, the dates of the
shared backfill, and backfilling the daily chain."""

from __future__ import annotations

import functools

from tools.run_system import PIPELINES, prune_unplanned_runs, run_backfills

LANDING = "/Volumes/ecom/raw/landing/events"
BACKFILL_DAYS = ["2019-10-01", "2019-10-02"]  # the shared backfill's dates; no other test's


def backfill_chain(airflow, days: list[str]) -> dict[str, list[dict]]:
    """Backfill ``days`` on the daily chain, as from the UI, and wait for every run; the
    scheduled run the scheduler creates for yesterday on unpause (no data was generated for
    it) is stopped, as ``make run`` does, so it cannot hold the single active-run slot of
    ``offline_feature_table``."""
    prune = functools.partial(prune_unplanned_runs, airflow, PIPELINES, set(days))
    return run_backfills(airflow, PIPELINES, days, timeout_minutes=20, on_poll=prune)
