"""A real-format monthly file splits into daily folders that ingest like generated days."""

from __future__ import annotations

import pytest
from ingest_events import ingest
from split_monthly_file import split

from clickstream.core.schema import HEADER

pytestmark = pytest.mark.spark

MONTH = [
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3-4e00-8c23-a032dfed738c",
    "2019-10-01 23:59:59 UTC,cart,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc",
    "2019-10-02 00:00:01 UTC,view,17200506,2053013559792632471,furniture.living_room.sofa,,543.10,519107250,566511c2-e78c-4a31-8d45-8f7de1b6c9d1",
    "garbage line without a date",
]


def test_lines_land_in_their_day_and_nothing_is_lost(spark, tmp_path):
    source = tmp_path / "2019-Oct.csv"
    source.write_text("\n".join([HEADER, *MONTH]) + "\n")
    landing = tmp_path / "landing"
    counts = split(spark, str(source), landing)
    assert counts == {"2019-10-01": 2, "2019-10-02": 1, "_unassigned": 1}
    day_one = sorted(p.read_text() for p in (landing / "2019-10-01").glob("*.csv"))
    assert sorted("".join(day_one).splitlines()) == sorted(MONTH[:2])
    result = ingest(
        spark,
        ds="2019-10-01",
        catalog="spark_catalog",
        landing_dir=str(landing),
        schema="rees46_split",
    )
    assert result["bronze"] == 2 and result["quarantined"] == 0
