"""A day delivered again, and an ingest that stops before its commit.

Silver reflects the current bronze of each ingest date: after a corrected re-delivery of a
day, it equals a fresh build of silver from bronze (corrected lines replace the old ones,
retracted ones are gone, an event the day no longer delivers moves to its next delivery).

The ingest log is the commit record of a date: silver builds only on bronze that matches it.
An ingest that stopped between its writes (killed, or refused by its reconciliation) leaves
bronze that the log does not account for, and the silver job refuses the date in one line
instead of publishing it.
"""

from __future__ import annotations

import uuid

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clickstream.pipeline import ingest as ingest_module
from clickstream.pipeline.ingest import ingest
from clickstream.pipeline.landing import IngestError
from clickstream.pipeline.silver import build_silver_events
from tests.support.landing import CATALOG, landing_lines

D1, D2, D3 = "2019-10-01", "2019-10-02", "2019-10-03"


def _line(ds: str, second: int, *, product: int, price: str = "5.00") -> str:
    return (
        f"{ds} 10:00:{second:02d} UTC,view,{product},2053013552326770905,"
        f"electronics.audio,acme,{price},777,s1"
    )


HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def _deliver(landing, ds: str, lines: list[str], name: str = "events.csv") -> None:
    folder = landing / ds
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join([HEADER, *lines]) + "\n")


def _schemas() -> tuple[str, str]:
    base = f"redeliv_{uuid.uuid4().hex[:8]}"
    return f"{base}_b", f"{base}_s"


def _silver(spark, bronze: str, silver: str, ds: str) -> None:
    build_silver_events(spark, ds=ds, catalog=CATALOG, bronze_schema=bronze, silver_schema=silver)


def _table(spark, schema: str, name: str = "events"):
    return spark.table(f"{CATALOG}.{schema}.{name}")


def test_silver_after_a_corrected_redelivery_equals_a_fresh_build_from_bronze(spark, tmp_path):
    landing = tmp_path / "landing"
    d2_fixed = _line(D2, 1, product=201, price="9.99")
    d2_corrected = _line(D2, 1, product=201, price="8.88")  # the same event, its price fixed
    d2_retracted = _line(D2, 2, product=202)  # delivered by D2 alone, then withdrawn
    moves = _line(D2, 3, product=203)  # delivered by D2 and D3; withdrawn from D2
    also_d1 = _line(D1, 4, product=104)  # a late copy in D2 of a D1 event; withdrawn from D2
    _deliver(landing, D1, [*landing_lines(D1, 30), also_d1])
    _deliver(landing, D2, [*landing_lines(D2, 30), d2_fixed, d2_retracted, moves, also_d1])
    _deliver(landing, D3, [*landing_lines(D3, 30), moves])
    bronze, silver = _schemas()
    for ds in (D1, D2, D3):
        ingest(spark, ds=ds, catalog=CATALOG, landing_dir=str(landing), schema=bronze)
        _silver(spark, bronze, silver, ds)
    before = _table(spark, silver).where(F.col("product_id").isin(201, 202, 203)).collect()
    assert {(r["product_id"], str(r["price"]), r["ingest_date"].isoformat()) for r in before} == {
        (201, "9.99", D2),
        (202, "5.00", D2),
        (203, "5.00", D2),
    }

    # The corrected re-delivery of D2: one price fixed, two lines withdrawn, the late copy too.
    _deliver(landing, D2, [*landing_lines(D2, 30), d2_corrected])
    ingest(spark, ds=D2, catalog=CATALOG, landing_dir=str(landing), schema=bronze)
    _silver(spark, bronze, silver, D2)

    fresh = _schemas()[1]
    for ds in (D1, D2, D3):
        _silver(spark, bronze, fresh, ds)
    assertDataFrameEqual(_table(spark, silver), _table(spark, fresh))
    after = {
        r["product_id"]: (str(r["price"]), r["ingest_date"].isoformat())
        for r in _table(spark, silver).where(F.col("product_id").isin(104, 201, 202, 203)).collect()
    }
    assert after == {104: ("5.00", D1), 201: ("8.88", D2), 203: ("5.00", D3)}

    # The other direction: a rerun of the same delivery changes nothing.
    kept = _table(spark, silver).collect()
    _silver(spark, bronze, silver, D2)
    assertDataFrameEqual(_table(spark, silver), kept)


def test_an_ingest_stopped_before_its_commit_is_not_built_on(spark, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    _deliver(landing, D1, landing_lines(D1, 20))
    bronze, silver = _schemas()
    ingest(spark, ds=D1, catalog=CATALOG, landing_dir=str(landing), schema=bronze)
    _silver(spark, bronze, silver, D1)
    committed = _table(spark, silver).collect()

    # A re-delivery whose ingest loses a row between parsing and bronze: the reconciliation
    # refuses it after bronze is written, so the ingest log (the commit) is not written.
    _deliver(landing, D1, landing_lines(D1, 25))
    real_rows = ingest_module.bronze_rows
    monkeypatch.setattr(
        ingest_module, "bronze_rows", lambda parsed: real_rows(parsed).where("product_id <> 1000")
    )
    with pytest.raises(IngestError, match="rows lost or landed twice"):
        ingest(spark, ds=D1, catalog=CATALOG, landing_dir=str(landing), schema=bronze)
    monkeypatch.undo()
    assert _table(spark, bronze).where(f"ingest_date = DATE'{D1}'").count() == 24  # visible...
    with pytest.raises(IngestError, match="stopped before its commit; rerun ingest_events"):
        _silver(spark, bronze, silver, D1)  # ...but not committed: nothing is built on it
    assertDataFrameEqual(_table(spark, silver), committed)

    # A date with bronze rows but no log row at all (its first ingest stopped the same way).
    rows = _table(spark, bronze).where(f"ingest_date = DATE'{D1}'")
    rows.withColumn("ingest_date", F.lit(D2).cast("date")).write.format("delta").mode(
        "append"
    ).saveAsTable(f"{CATALOG}.{bronze}.events")
    with pytest.raises(IngestError, match=f"{D2}: no row in .*events_ingest_log"):
        _silver(spark, bronze, silver, D2)

    # The other direction: the rerun of the ingest commits, and silver builds on it.
    ingest(spark, ds=D1, catalog=CATALOG, landing_dir=str(landing), schema=bronze)
    _silver(spark, bronze, silver, D1)
    assert _table(spark, silver).count() == 25
