"""The synthetic generator: exact REES46 format, determinism, funnel shape, drift."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest

from clickstream.schema import RAW_COLUMNS
from clickstream.synthetic import build_world, generate_day, ground_truth_csv, to_csv

ROW = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC,(view|cart|remove_from_cart|purchase),\d+,"
    r"\d{19},[a-z_.]*,[a-z]*,\d+\.\d{2},\d{9},"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)
DAY = date(2019, 10, 1)


@pytest.fixture(scope="module")
def world():
    return build_world(seed=7, users=500)


def test_rows_are_in_the_published_rees46_format(world):
    lines = to_csv(generate_day(world, 7, DAY, 3000)).decode().splitlines()
    assert lines[0] == ",".join(RAW_COLUMNS)
    bad = [line for line in lines[1:] if not ROW.match(line)]
    assert bad == []
    assert len(lines) == 3001


def test_a_day_is_identical_whatever_else_is_generated(world):
    first = to_csv(generate_day(world, 7, DAY, 2000))
    generate_day(world, 7, date(2019, 10, 2), 2000)
    assert to_csv(generate_day(build_world(seed=7, users=500), 7, DAY, 2000)) == first
    assert to_csv(generate_day(world, 8, DAY, 2000)) != first


def test_views_dominate_and_carts_and_purchases_are_a_few_percent(world):
    counts = Counter(row[1] for row in generate_day(world, 7, DAY, 20000))
    total = sum(counts.values())
    assert counts["view"] / total > 0.85
    assert 0.005 < counts["cart"] / total < 0.08
    assert 0.002 < counts["purchase"] / total < 0.05
    assert counts["purchase"] <= counts["cart"]


def test_late_events_of_earlier_days_arrive_in_the_file(world):
    rows = generate_day(world, 7, DAY, 20000)
    late = [r for r in rows if not r[0].startswith("2019-10-01")]
    assert 0 < len(late) < 0.02 * len(rows)
    assert {r[0][:10] for r in late} <= {"2019-09-29", "2019-09-30"}


def test_price_shift_drift_raises_prices_from_its_start_date(world):
    def mean_price(day, scenario):
        rows = generate_day(world, 7, day, 5000, scenario, date(2019, 10, 5))
        return sum(float(r[6]) for r in rows) / len(rows)

    before = date(2019, 10, 4)
    after = date(2019, 10, 6)
    assert mean_price(before, "price_shift") == mean_price(before, "none")
    assert mean_price(after, "price_shift") > 1.1 * mean_price(after, "none")


def test_behaviour_change_lowers_conversion(world):
    def carts(scenario):
        rows = generate_day(world, 7, DAY, 20000, scenario, DAY)
        return sum(r[1] == "cart" for r in rows)

    assert carts("behaviour_change") < 0.7 * carts("none")


def test_ground_truth_has_one_propensity_per_user(world):
    lines = ground_truth_csv(world).decode().splitlines()
    assert lines[0] == "user_id,purchase_propensity"
    assert len(lines) == 501
    assert all(0 <= float(line.split(",")[1]) <= 1 for line in lines[1:])
