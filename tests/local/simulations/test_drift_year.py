"""Over a simulated year with drift injected in known months, the drift pipeline flags every drift
month and no stable month.

Six months of synthetic click-stream (the same 36-day slice per month, mature 30-day windows, see
``local/simulations/drift_year.py``) go through the ingest parser, silver's dedup and the bulk feature
computation into a Delta ``user_features`` table; a champion's training window is month 1; the
drift job (``detect_drift.py``'s ``main``) runs for the five others. Price shift in May, category
mix in September and behaviour change in November must be flagged, the stable March and July not. The
confusion table is printed (``pytest -s``); ``python -m local.simulations.drift_year_doc`` writes the same
simulation to ``docs/drift_year.md``.

The job runs with the configured threshold, ``Environment.drift_share`` (the ``--drift-share`` the
DAG passes; calibrated in ``docs/drift_calibration.md``), and the test asserts with that value.
"""

from __future__ import annotations

import time
import uuid

import mlflow
import pytest

from ecom_airflow.config import Environment
from local.simulations.drift_year import (
    DRIFT_MONTHS,
    MONTHS,
    YearConfig,
    confusion,
    confusion_lines,
    month_lines,
    months,
    simulate,
)

pytestmark = [pytest.mark.spark, pytest.mark.e2e]

CONFIG = YearConfig(threshold=Environment.drift_share)  # the configured threshold

# The features each scenario moves, which its month must be flagged for (not for noise alone).
SCENARIO_COLUMNS = {
    "price_shift": {"avg_price_viewed_1d", "avg_price_viewed_7d", "avg_price_viewed_30d"},
    "category_mix": {"avg_price_viewed_1d", "avg_price_viewed_7d", "avg_price_viewed_30d"},
    "behaviour_change": {
        "carts_7d",
        "purchases_7d",
        "view_to_cart_7d",
        "cart_to_purchase_7d",
        "carts_30d",
        "purchases_30d",
        "view_to_cart_30d",
        "cart_to_purchase_30d",
    },
}


@pytest.fixture(scope="module")
def year(spark, tracking, spark_codegen, tmp_path_factory):
    """The simulated year through the drift job: one result per month after the first."""
    workdir = tmp_path_factory.mktemp("drift_year")
    names = {
        "schema": f"t_{uuid.uuid4().hex[:8]}",
        "experiment": f"/test/drift-year-{uuid.uuid4().hex[:6]}",
        "model": f"propensity_{uuid.uuid4().hex[:8]}",
    }
    mlflow.create_experiment(names["experiment"], artifact_location=str(workdir / "artifacts"))
    started = time.monotonic()
    with spark_codegen():  # a year of events is not the tests' tiny data
        results = simulate(spark, CONFIG, workdir, names)
    print(f"\nsimulated year in {time.monotonic() - started:.0f}s")
    return results


def test_every_drift_month_is_flagged_and_no_stable_month(year):
    print("\n" + "\n".join(month_lines(year)))
    print(f"\nconfusion at the configured threshold {Environment.drift_share}:")
    print("\n".join(confusion_lines(confusion(year))))

    reference = months(CONFIG)[0]
    assert [r.month.number for r in year] == list(MONTHS[1:])
    assert {r.month.number: r.month.scenario for r in year if r.actual} == DRIFT_MONTHS
    for r in year:
        # Every month was compared with month 1's feature dates on enough rows, at the
        # configured threshold.
        window = (r.summary["reference"]["start"], r.summary["reference"]["end"])
        assert window == (reference.feature_start.isoformat(), reference.feature_end.isoformat())
        assert r.summary["sufficient"] is True, r.month
        assert r.summary["threshold"] == Environment.drift_share
    flagged = {r.month.number: r.flagged for r in year}
    assert flagged == {r.month.number: r.actual for r in year}, [
        (r.month.number, r.month.scenario, round(r.share, 3)) for r in year
    ]
    assert confusion(year) == {"tp": 3, "fn": 0, "fp": 0, "tn": 2}
    for r in year:
        # Every month is mature on both sides: nothing skipped.
        assert r.summary["maturity"]["reference"]["skipped_days"] == 0
        assert r.summary["maturity"]["current"]["skipped_days"] == 0


def test_each_drift_month_is_flagged_for_its_scenarios_features(year):
    for r in year:
        if r.actual:
            expected = SCENARIO_COLUMNS[r.month.scenario]
            assert expected <= set(r.summary["drifted_columns"]), (r.month, expected)
