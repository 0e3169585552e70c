"""The synthetic generator: exact REES46 format, determinism, funnel shape, drift."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from datetime import date

import pytest
from generate_events import main as generate_main

from clickstream.core.schema import HEADER
from clickstream.sources.synthetic import (
    CATEGORIES,
    WEEKDAY_VOLUME,
    Drift,
    build_world,
    generate_day,
    ground_truth_csv,
    to_csv,
)

ROW = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC,(view|cart|remove_from_cart|purchase),\d+,"
    r"\d{19},[a-z_.]*,[a-z]*,\d+\.\d{2},\d{9},"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)
DAY = date(2019, 10, 1)  # a Tuesday
DRIFT_START = date(2019, 10, 5)


@pytest.fixture(scope="module")
def world():
    return build_world(seed=7, users=500)


def _fields(lines: list[str]) -> list[list[str]]:
    return [line.split(",") for line in lines]


def test_rows_are_in_the_published_rees46_format(world):
    lines = to_csv(generate_day(world, 7, DAY, 3000)).decode().splitlines()
    assert lines[0] == HEADER
    assert [line for line in lines[1:] if not ROW.match(line)] == []
    # The volume is a weekday's volume scaled by the day of the week.
    assert len(lines) == 1 + round(3000 * WEEKDAY_VOLUME[DAY.weekday()])


def test_rows_are_sorted_by_event_time_and_sessions_belong_to_one_user(world):
    rows = _fields(generate_day(world, 7, DAY, 5000))
    times = [r[0] for r in rows]
    assert times == sorted(times)
    users_per_session: dict[str, set[str]] = {}
    for r in rows:
        users_per_session.setdefault(r[8], set()).add(r[7])
    assert max(len(u) for u in users_per_session.values()) == 1


def test_empty_category_code_and_brand_occur_as_in_the_published_data(world):
    rows = _fields(generate_day(world, 7, DAY, 20000))
    no_code = sum(r[4] == "" for r in rows) / len(rows)
    no_brand = sum(r[5] == "" for r in rows) / len(rows)
    assert 0.1 < no_code < 0.5
    assert 0.02 < no_brand < 0.3


def test_a_day_is_identical_whatever_else_is_generated(world):
    first = to_csv(generate_day(world, 7, DAY, 2000))
    generate_day(world, 7, date(2019, 10, 2), 2000)
    assert to_csv(generate_day(build_world(seed=7, users=500), 7, DAY, 2000)) == first
    assert to_csv(generate_day(world, 8, DAY, 2000)) != first


def test_gzip_output_is_byte_identical_across_runs(world):
    lines = generate_day(world, 7, DAY, 500)
    assert to_csv(lines, compress=True) == to_csv(lines, compress=True)
    assert gzip.decompress(to_csv(lines, compress=True)) == to_csv(lines)


def test_views_dominate_and_carts_and_purchases_are_a_few_percent(world):
    counts = Counter(r[1] for r in _fields(generate_day(world, 7, DAY, 20000)))
    total = sum(counts.values())
    assert counts["view"] / total > 0.85
    assert 0.005 < counts["cart"] / total < 0.08
    assert 0.002 < counts["purchase"] / total < 0.05
    assert counts["purchase"] <= counts["cart"]


def test_weekends_carry_more_events_than_weekdays(world):
    tuesday = len(generate_day(world, 7, DAY, 10000))
    saturday = len(generate_day(world, 7, date(2019, 10, 5), 10000))
    assert saturday > 1.1 * tuesday


def test_late_events_of_earlier_days_arrive_in_the_file(world):
    rows = generate_day(world, 7, DAY, 20000)
    late = [r for r in rows if not r.startswith("2019-10-01")]
    assert 0 < len(late) < 0.02 * len(rows)
    assert {r[:10] for r in late} <= {"2019-09-29", "2019-09-30"}


def test_high_propensity_users_buy_more(world):
    rows = _fields(generate_day(world, 7, DAY, 40000))
    propensity = dict(
        zip(map(str, world.user_ids.tolist()), world.propensity.tolist(), strict=True)
    )
    median = sorted(propensity.values())[len(propensity) // 2]
    buys = Counter(propensity[r[7]] > median for r in rows if r[1] == "purchase")
    views = Counter(propensity[r[7]] > median for r in rows if r[1] == "view")
    assert buys[True] / views[True] > 2 * buys[False] / views[False]


def _mean_price(world, day, drift):
    rows = _fields(generate_day(world, 7, day, 5000, drift))
    return sum(float(r[6]) for r in rows) / len(rows)


def test_price_shift_drift_raises_prices_from_its_start_date(world):
    drift = Drift("price_shift", DRIFT_START)
    before, after = date(2019, 10, 4), date(2019, 10, 6)
    assert _mean_price(world, before, drift) == _mean_price(world, before, Drift())
    assert _mean_price(world, after, drift) > 1.1 * _mean_price(world, after, Drift())


def test_category_mix_drift_moves_interest_to_the_target_categories(world):
    targets = {"apparel.shoes", "kids.toys", "sport.bicycle"}

    def share(drift):
        rows = _fields(generate_day(world, 7, DAY, 10000, drift))
        return sum(r[4] in targets for r in rows) / len(rows)

    assert share(Drift("category_mix", DAY)) > share(Drift()) + 0.3


def test_behaviour_change_lowers_conversion(world):
    def carts(drift):
        return sum(r[1] == "cart" for r in _fields(generate_day(world, 7, DAY, 20000, drift)))

    assert carts(Drift("behaviour_change", DAY)) < 0.7 * carts(Drift())


@pytest.mark.parametrize(
    ("scenario", "start", "message"),
    [("weather", DAY, "unknown drift scenario"), ("price_shift", None, "needs a start date")],
)
def test_bad_drift_settings_are_refused(scenario, start, message):
    with pytest.raises(ValueError, match=message):
        Drift(scenario, start)


def test_every_category_has_products_and_ids_are_unique(world):
    assert set(world.product_category.tolist()) == set(range(len(CATEGORIES)))
    assert len(set(world.product_ids.tolist())) == len(world.product_ids)
    assert len(set(world.user_ids.tolist())) == len(world.user_ids)


def test_ground_truth_has_one_propensity_per_user(world):
    lines = ground_truth_csv(world).decode().splitlines()
    assert lines[0] == "user_id,purchase_propensity,activity_share"
    assert len(lines) == 501
    assert all(0 <= float(line.split(",")[1]) <= 1 for line in lines[1:])
    assert sum(float(line.split(",")[2]) for line in lines[1:]) == pytest.approx(1.0)


def test_cli_writes_the_landing_layout_and_keeps_the_truth_apart(tmp_path):
    landing = tmp_path / "raw" / "landing" / "events"
    argv = ["--start-date", "2019-10-01", "--days", "2", "--landing-dir", str(landing)]
    assert generate_main([*argv, "--users", "50", "--events-per-day", "300"]) == 0
    assert sorted(p.name for p in landing.iterdir()) == ["2019-10-01", "2019-10-02"]
    assert (landing / "2019-10-01" / "events.csv").read_text().startswith(HEADER + "\n")
    truth = tmp_path / "raw" / "landing" / "ground_truth"
    assert len((truth / "users.csv").read_text().splitlines()) == 51
    assert json.loads((truth / "generator.json").read_text())["users"] == 50
    days = (truth / "days.csv").read_text().splitlines()
    assert days[0] == "day,sessions,cart_scale,buy_scale"
    assert [d.split(",")[0] for d in days[1:]] == ["2019-10-01", "2019-10-02"]
    # Regenerating a day as gzip replaces the plain file, so a day is never ingested twice.
    generate_main([*argv[:3], "1", *argv[4:], "--users", "50", "--gzip", "--events-per-day", "300"])
    assert sorted(p.name for p in (landing / "2019-10-01").iterdir()) == ["events.csv.gz"]
    # A later call keeps the days of earlier calls of the same world, and adds its own.
    later = ["--start-date", "2019-10-03", "--days", "1", "--landing-dir", str(landing)]
    assert generate_main([*later, "--users", "50", "--events-per-day", "300"]) == 0
    merged = (truth / "days.csv").read_text().splitlines()
    assert merged[:3] == days and merged[3].startswith("2019-10-03,")
    # Another world (here: more users) starts the days afresh: its sessions are other ones.
    assert generate_main([*later, "--users", "60", "--events-per-day", "300"]) == 0
    assert len((truth / "days.csv").read_text().splitlines()) == 2


def test_cli_refuses_a_bad_date_with_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        generate_main(["--start-date", "2019-13-01", "--days", "1", "--landing-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "2019-13-01" in capsys.readouterr().err
