"""The ingest job on Spark + Delta: types, quarantine reasons, no row lost, idempotent rerun."""

from __future__ import annotations

import gzip
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from ingest_events import main as ingest_main
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clickstream.core.schema import HEADER
from clickstream.pipeline.ingest import ingest
from clickstream.pipeline.landing import IngestError
from tests.support.landing import BAD, NOT_SILENTLY_FIXED, REAL

pytestmark = pytest.mark.spark

DS = "2019-10-01"


def _landing(tmp_path, lines, name="events.csv", ds=DS, compress=False):
    folder = tmp_path / "landing" / ds
    folder.mkdir(parents=True, exist_ok=True)
    content = ("\n".join([HEADER, *lines]) + "\n").encode()
    (folder / name).write_bytes(gzip.compress(content) if compress else content)
    return str(tmp_path / "landing")


def _schema() -> str:
    return f"bronze_{uuid.uuid4().hex[:8]}"


def test_real_rows_are_typed(spark, tmp_path):
    schema = _schema()
    counts = ingest(
        spark, ds=DS, catalog="spark_catalog", landing_dir=_landing(tmp_path, REAL), schema=schema
    )
    assert counts == {"files": 1, "rows_in": 3, "bronze": 3, "quarantined": 0, "reasons": {}}
    row = spark.table(f"{schema}.events").where(F.col("product_id") == 44600062).first()
    assert row["event_time"] == datetime(2019, 10, 1, 0, 0, 0)
    assert row["category_id"] == 2103807459595387724
    assert row["category_code"] is None
    assert row["brand"] == "shiseido"
    assert row["price"] == Decimal("35.79")
    assert row["user_id"] == 541312140
    assert row["raw_record"] == REAL[0]
    assert str(row["event_date"]) == DS
    assert row["ingested_at"] == datetime(2019, 10, 2)
    assert row["source_file"] == f"{tmp_path}/landing/{DS}/events.csv"
    assert row["ingest_date"].isoformat() == DS


def test_each_bad_row_is_quarantined_with_its_reason(spark, tmp_path):
    schema = _schema()
    landing = _landing(tmp_path, [*REAL, *BAD.values()])
    counts = ingest(spark, ds=DS, catalog="spark_catalog", landing_dir=landing, schema=schema)
    assert counts["rows_in"] == counts["bronze"] + counts["quarantined"] == len(REAL) + len(BAD)
    quarantined = spark.table(f"{schema}.events_quarantine").select("reason", "raw_record")
    expected = spark.createDataFrame(
        [(reason, line) for reason, line in BAD.items()], "reason string, raw_record string"
    )
    assertDataFrameEqual(quarantined, expected)
    assert counts["reasons"] == dict.fromkeys(sorted(BAD), 1)


def test_lines_a_lenient_parser_would_alter_are_quarantined_not_fixed(spark, tmp_path):
    schema = _schema()
    landing = _landing(tmp_path, list(NOT_SILENTLY_FIXED.values()))
    counts = ingest(spark, ds=DS, catalog="spark_catalog", landing_dir=landing, schema=schema)
    assert counts["bronze"] == 0
    quarantined = spark.table(f"{schema}.events_quarantine").select("reason", "raw_record")
    assertDataFrameEqual(
        quarantined,
        spark.createDataFrame(list(NOT_SILENTLY_FIXED.items()), "reason string, raw_record string"),
    )


def test_non_utf8_bytes_are_quarantined(spark, tmp_path):
    schema = _schema()
    landing = _landing(tmp_path, REAL)
    path = tmp_path / "landing" / DS / "events.csv"
    path.write_bytes(
        path.read_bytes()
        + "2019-10-01 00:00:03 UTC,view,1,2,,br\xe9nd,1.00,5,s\n".encode("latin-1")
    )
    counts = ingest(spark, ds=DS, catalog="spark_catalog", landing_dir=landing, schema=schema)
    assert counts["quarantined"] == 1
    row = spark.table(f"{schema}.events_quarantine").first()
    assert row["reason"] == "non_utf8"
    # The exact bytes are kept for forensics; the text column stays readable.
    assert bytes(row["raw_bytes"]) == "2019-10-01 00:00:03 UTC,view,1,2,,br\xe9nd,1.00,5,s".encode(
        "latin-1"
    )
    assert "\ufffd" in row["raw_record"]


def test_rerun_leaves_the_tables_identical(spark, tmp_path):
    schema = _schema()
    landing = _landing(tmp_path, [*REAL, *BAD.values()])
    other = _landing(tmp_path, REAL[:1], ds="2019-10-02")
    ingest(spark, ds="2019-10-02", catalog="spark_catalog", landing_dir=other, schema=schema)
    ingest(spark, ds=DS, catalog="spark_catalog", landing_dir=landing, schema=schema)
    first = {t: spark.table(f"{schema}.{t}").collect() for t in ("events", "events_quarantine")}
    ingest(spark, ds=DS, catalog="spark_catalog", landing_dir=landing, schema=schema)
    for table, rows in first.items():
        assertDataFrameEqual(spark.table(f"{schema}.{table}"), rows)
    assert spark.table(f"{schema}.events").where("ingest_date = '2019-10-02'").count() == 1


def test_gzip_input_ingests_like_plain_csv(spark, tmp_path):
    schema = _schema()
    landing = _landing(tmp_path, REAL, name="events.csv.gz", compress=True)
    counts = ingest(spark, ds=DS, catalog="spark_catalog", landing_dir=landing, schema=schema)
    assert counts["bronze"] == 3


def test_header_only_file_lands_nothing_and_succeeds(spark, tmp_path):
    schema = _schema()
    counts = ingest(
        spark, ds=DS, catalog="spark_catalog", landing_dir=_landing(tmp_path, []), schema=schema
    )
    assert counts == {"files": 1, "rows_in": 0, "bronze": 0, "quarantined": 0, "reasons": {}}


def test_every_csv_of_the_day_is_read_and_a_repeated_header_is_not_a_row(spark, tmp_path):
    schema = _schema()
    landing = _landing(tmp_path, REAL[:2])
    _landing(tmp_path, [REAL[2], HEADER], name="late-delivery.csv")
    (tmp_path / "landing" / DS / ".events.csv.partial").write_text(HEADER + "\n" + REAL[0])
    counts = ingest(spark, ds=DS, catalog="spark_catalog", landing_dir=landing, schema=schema)
    assert (counts["files"], counts["bronze"], counts["quarantined"]) == (2, 3, 0)


def test_missing_landing_folder_names_the_expected_path(spark, tmp_path):
    with pytest.raises(IngestError, match=f"{tmp_path}/nowhere/{DS}/ holding"):
        ingest(spark, ds=DS, catalog="spark_catalog", landing_dir=str(tmp_path / "nowhere"))


def test_the_job_fails_with_one_line_naming_the_problem(spark, tmp_path):
    argv = ["--ds", DS, "--catalog", "spark_catalog", "--landing-dir", str(tmp_path / "nowhere")]
    with pytest.raises(SystemExit, match=f"ingest_events failed: no landing folder for {DS}"):
        ingest_main(argv)


def test_the_job_prints_the_counts_by_reason(spark, tmp_path, capsys):
    landing = _landing(tmp_path, [*REAL, BAD["bad_price"]])
    argv = ["--ds", DS, "--catalog", "spark_catalog", "--landing-dir", landing]
    assert ingest_main([*argv, "--bronze-schema", _schema()]) == 0
    out = capsys.readouterr().out
    assert f"{DS}: rows in      4" in out
    assert f"{DS}: bronze       3" in out
    assert f"{DS}:   bad_price: 1" in out


@pytest.mark.parametrize("ds", ["2019-10-01' OR '1'='1", "20191001", "2019-02-30"])
def test_a_crafted_date_never_reaches_the_predicate(spark, tmp_path, ds):
    with pytest.raises(ValueError, match="date"):
        ingest(spark, ds=ds, catalog="spark_catalog", landing_dir=str(tmp_path))
