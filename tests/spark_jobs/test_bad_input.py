"""Bad input, one case per row: a clear outcome for each, never a silent drop, never a traceback.

Every case writes its file(s) to ``<landing>/<ds>/`` and runs the ingest job's entry point
(``ingest_events.main``), then either

* checks what landed: the quarantine reasons and bronze rows, counted from the tables, and
  rows in = bronze + quarantined, where rows in is counted here from the files themselves
  (every line, recognised REES46 headers excepted) and also read from the job's own record
  in ``bronze.events_ingest_log``; or
* expects the job's one-line error, ``SystemExit("ingest_events failed: ...")`` raised through
  ``expected_failures``, with nothing landed or recorded for the date.

The data-quality cases then run the validation job's entry point (``validate_data.main``) on
the date and compare the blocking failures and warnings of its JSON summary (what the Airflow
gate reads) with the expected expectation and observed value; the report and the
``monitoring.dq_results`` rows of the date are checked for every validated case.

===========================  ===================================================  ==============
case (test id)               outcome                                              also covered
===========================  ===================================================  ==============
malformed_csv_lines          quarantined: wrong_field_count, empty_line           test_ingest
wrong_types                  quarantined: bad_event_time, bad_product_id,         test_ingest
                             bad_category_id, bad_price, missing_user_session
missing_columns              file quarantined whole: header_mismatch, the log
                             names ``missing brand``
extra_columns                file quarantined whole: header_mismatch
                             (``unexpected country``); an extra field in a
                             good file: wrong_field_count
header_only_file             0 rows in, nothing quarantined; validation: blocking
                             row count ``0 rows (...empty or header only)`` and
                             volume ratio 0
empty_file_0_bytes           same as header-only
no_folder_for_the_date       error ``no landing folder for <ds>: expected ...``   test_ingest,
                             (the DAG's ``wait_for_landing_files`` sensor waits   test_landing_
                             for it first and times out naming the folder)        sensor
no_csv_file_for_the_date     error ``no *.csv or *.csv.gz file for <ds> in ...``  test_landing_
                             (``.txt`` and hidden files do not count)             sensor
gzip_input                   ``.csv.gz`` read like ``.csv`` (same reasons)        test_ingest
truncated_gzip               error ``.../events.csv.gz is not a readable gzip
                             file (EOFError: ...)``
not_gzip_named_gz            error ``... is not a readable gzip file
                             (BadGzipFile: ...)``
non_utf8_bytes               quarantined: non_utf8 with the exact bytes kept;     test_ingest
                             a UTF-8 BOM before the header is fine
negative_or_absurd_prices    negative / 11-digit: quarantined bad_price; 250000:  test_quality
                             lands, warning ``price`` (0..100000)
unknown_event_types          quarantined bad_event_type; 4 of 44 lines: blocking  test_quality
                             quarantine share 0.09091
events_far_in_future_or_     land; warning ``event_time`` outside [ds - 6 h,
past                         ds + 1 day) for 2 of 42 rows
duplicated_events            a file delivered twice lands twice (silver
                             dedups); warning duplicates 80 of 80 rows
volume_spike_10x             blocking ``volume ratio 10 (400 rows / median 40 of  test_quality
                             3 days)``
user_id_not_a_number         quarantined: bad_user_id (text, empty, decimal,      test_ingest
                             negative, exponent, 0, beyond a bigint)
schema_change_renamed_       header ``price_usd``: file quarantined whole as
column                       header_mismatch (``missing price; unexpected
                             price_usd``); the same header inside a good file:
                             that line only
schema_change_reordered_     header with user_id and product_id swapped: file
columns                      quarantined whole (its rows would parse with the
                             ids swapped); validation: blocking row count and
                             quarantine share 1 (warning tier too)
===========================  ===================================================  ==============

``test_an_empty_day_...`` below adds the rest of the empty-day contract: a rerun leaves the same
``dq_results`` rows, and the silver and feature suites of that day fail their row count too
(their other checks skipped, not failed on a null minimum). A date never ingested stays a clear
error (``test_quality.py::test_missing_partition_or_table_fails_clearly``).
"""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ingest_events import main as ingest_main
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from validate_data import main as validate_main

from clickstream.core.schema import HEADER
from clickstream.pipeline.features import build_features
from clickstream.pipeline.ingest import BRONZE_INGEST_LOG
from clickstream.pipeline.silver import build_silver_events
from clickstream.quality.results import DQ_RESULTS
from tests.support.landing import (
    BAD,
    CATALOG,
    NOT_SILENTLY_FIXED,
    REAL,
    ROWS_PER_DAY,
    land_bronze,
    landing_lines,
)

pytestmark = pytest.mark.spark

HISTORY = ("2019-10-01", "2019-10-02", "2019-10-03")  # 40 bronze rows each, no ingest record
ROWS = "expect_table_row_count_to_be_between"  # the key of the (table-level) row count check
BOM = "\ufeff"


def content(*lines: str | bytes, header: str | None = HEADER) -> bytes:
    """A landing file: ``header`` (None: none), then ``lines``, each ending with a newline."""
    parts = ([] if header is None else [header]) + list(lines)
    return b"".join((p if isinstance(p, bytes) else p.encode()) + b"\n" for p in parts)


def lines_in(files: dict[str, bytes]) -> int:
    """Rows in, counted from the files as the ingest documents it: every line of every
    ``*.csv`` / ``*.csv.gz`` not hidden, except lines equal to the REES46 header."""
    headers = {HEADER.encode(), (BOM + HEADER).encode()}
    count = 0
    for name, data in files.items():
        if name.startswith((".", "_")) or not name.endswith((".csv", ".csv.gz")):
            continue
        text = gzip.decompress(data) if name.endswith(".gz") else data
        count += sum(line not in headers for line in text.splitlines())
    return count


def _line(
    ds: str,
    *,
    kind: str = "view",
    product: str = "7",
    price: str = "9.99",
    user: str = "541312140",
    time: str = "12:00:00",
) -> str:
    return f"{ds} {time} UTC,{kind},{product},2053013552326770905,,acme,{price},{user},s-1"


@dataclass(frozen=True)
class Case:
    """One bad input: its files and the outcome expected.

    ``error``: the one-line ``SystemExit`` message (``{folder}``: the date's landing folder). Otherwise ``bronze`` and ``reasons`` are what lands; ``notes`` are in the
    job's output. ``blocking`` / ``warnings`` (key: the column, or the expectation of a
    table-level check -> the start of the observed value) are the validation's failures;
    None: the case is not validated.
    """

    id: str
    ds: str
    files: dict[str, bytes]
    bronze: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    error: str = ""
    notes: tuple[str, ...] = ()
    blocking: dict[str, str] | None = None
    warnings: dict[str, str] = field(default_factory=dict)


def _cases() -> list[Case]:
    good = {"good.csv": content(*REAL)}  # three real REES46 rows
    d = "2019-11-03"
    no_brand = HEADER.replace(",brand,", ",")
    d4 = "2019-11-04"
    renamed = HEADER.replace(",price,", ",price_usd,")
    reordered = (
        HEADER.replace("product_id", "X").replace("user_id", "product_id").replace("X", "user_id")
    )
    gz_ok = gzip.compress(content(*REAL, BAD["bad_user_id"]))
    spike, prices = "2019-10-04", "2019-10-07"
    unknown, far, dupes = "2019-10-08", "2019-10-09", "2019-10-10"
    day_of_40 = content(*landing_lines(dupes))
    return [
        Case(
            "malformed_csv_lines",
            "2019-11-01",
            {
                "events.csv": content(
                    *REAL,
                    "2019-11-01 00:00:02 UTC,view,1,2053013552326770905,,x,1.00,541312140",  # 8 fields
                    '2019-11-01 00:00:02 UTC,view,1,2053013552326770905,"a,b",x,1.00,5,s',  # quoted comma
                    "2019-11-01 00:00:02 UTC,view,1,2053013552326770905,,x,1.00,5,s,",  # trailing comma
                    "}{ not a csv line",
                    "",
                    "   ",
                )
            },
            bronze=3,
            reasons={"wrong_field_count": 4, "empty_line": 2},
        ),
        Case(
            "wrong_types",
            "2019-11-02",
            {
                "events.csv": content(
                    *REAL,
                    BAD["bad_event_time"],
                    "2019-11-02T00:00:02Z,view,1,2053013552326770905,,x,1.00,541312140,s",
                    BAD["bad_product_id"],
                    NOT_SILENTLY_FIXED["bad_product_id"],  # " 7": not trimmed into 7
                    "2019-11-02 00:00:02 UTC,view,1,1.5,,x,1.00,541312140,s",
                    NOT_SILENTLY_FIXED["bad_price"],  # 1.005: not rounded
                    "2019-11-02 00:00:02 UTC,view,1,2053013552326770905,,x,N/A,541312140,s",
                    BAD["missing_user_session"],
                )
            },
            bronze=3,
            reasons={
                "bad_event_time": 2,
                "bad_product_id": 2,
                "bad_category_id": 1,
                "bad_price": 2,
                "missing_user_session": 1,
            },
        ),
        Case(
            "missing_columns",
            d,
            {
                **good,
                "export.csv": content(
                    f"{d} 00:00:01 UTC,view,7,2053013552326770905,,9.99,541312140,s-1",
                    f"{d} 00:00:02 UTC,cart,7,2053013552326770905,,9.99,541312140,s-1",
                    header=no_brand,
                ),
            },
            bronze=3,
            reasons={"header_mismatch": 3},
            notes=("export.csv: the header is not the REES46 header (missing brand)",),
        ),
        Case(
            "extra_columns",
            d4,
            {
                "good.csv": content(*REAL, _line(d4) + ",DE"),
                "export.csv": content(
                    _line(d4) + ",DE", _line(d4) + ",FR", header=HEADER + ",country"
                ),
            },
            bronze=3,
            reasons={"header_mismatch": 3, "wrong_field_count": 1},
            notes=("export.csv: the header is not the REES46 header (unexpected country)",),
        ),
        Case(
            "header_only_file",
            "2019-10-05",
            {"events.csv": content()},
            blocking={
                ROWS: "0 rows (the 1 file(s) of the date hold no rows: empty or header only)",
                "volume_ratio": "volume ratio 0 (0 rows / median 40 of ",
            },
        ),
        Case(
            "empty_file_0_bytes",
            "2019-10-06",
            {"events.csv": b""},
            blocking={
                ROWS: "0 rows (the 1 file(s) of the date hold no rows: empty or header only)",
                "volume_ratio": "volume ratio 0 (0 rows / median 40 of ",
            },
        ),
        Case(
            "no_folder_for_the_date",
            "2019-11-05",
            {},
            error="ingest_events failed: no landing folder for 2019-11-05: expected {folder}/ "
            "holding *.csv or *.csv.gz",
        ),
        Case(
            "no_csv_file_for_the_date",
            "2019-11-06",
            {"events.txt": content(*REAL), ".events.csv": content(*REAL), "_events.csv.gz": gz_ok},
            error="ingest_events failed: no *.csv or *.csv.gz file for 2019-11-06 in {folder}/",
        ),
        Case(
            "gzip_input",
            "2019-11-07",
            {"events.csv.gz": gz_ok, "late.csv": content(REAL[0])},
            bronze=4,
            reasons={"bad_user_id": 1},
        ),
        Case(
            "truncated_gzip",
            "2019-11-08",
            {**good, "events.csv.gz": gzip.compress(content(*landing_lines("2019-11-08")))[:-40]},
            error="ingest_events failed: {folder}/events.csv.gz is not a readable gzip file "
            "(EOFError: Compressed file ended before the end-of-stream marker was "
            "reached); deliver it again and rerun the date",
        ),
        Case(
            "not_gzip_named_gz",
            "2019-11-09",
            {"events.csv.gz": content(*REAL)},
            error="ingest_events failed: {folder}/events.csv.gz is not a readable gzip file "
            "(BadGzipFile: Not a gzipped file (b'ev')); deliver it again and rerun the "
            "date",
        ),
        Case(
            "non_utf8_bytes",
            "2019-11-10",
            {
                "events.csv": BOM.encode()
                + content(
                    *REAL,
                    "2019-11-10 00:00:03 UTC,view,1,2,,br\xe9nd,1.00,5,s".encode("latin-1"),
                    b"2019-11-10 00:00:04 UTC,view,1,2,,\xff\xfe,1.00,5,s",
                )
            },
            bronze=3,
            reasons={"non_utf8": 2},
        ),
        Case(
            "negative_or_absurd_prices",
            prices,
            {
                "events.csv": content(
                    landing_lines(prices, 1, price="250000.00")[0],
                    *landing_lines(prices)[1:],
                    _line(prices, price="-5.00"),
                    _line(prices, price="12345678901.00"),
                )
            },
            bronze=ROWS_PER_DAY,
            reasons={"bad_price": 2},
            blocking={},
            warnings={
                "price": "1 of 40 rows out of range (2.50%), e.g. 250000.00",
                "quarantine_share": "quarantine share 0.04762 (2 of 42 lines)",
            },
        ),
        Case(
            "unknown_event_types",
            unknown,
            {
                "events.csv": content(
                    *landing_lines(unknown),
                    *(_line(unknown, kind=k) for k in ("click", "View", "", "buy")),
                )
            },
            bronze=ROWS_PER_DAY,
            reasons={"bad_event_type": 4},
            blocking={"quarantine_share": "quarantine share 0.09091 (4 of 44 lines)"},
            warnings={"quarantine_share": "quarantine share 0.09091 (4 of 44 lines)"},
        ),
        Case(
            "events_far_in_future_or_past",
            far,
            {
                "events.csv": content(
                    *landing_lines(far),
                    _line("2099-01-01"),
                    _line("1970-01-01"),
                )
            },
            bronze=ROWS_PER_DAY + 2,
            blocking={},
            warnings={"event_time": "2 of 42 rows out of range (4.76%)"},
        ),
        Case(
            "duplicated_events",
            dupes,
            {"events.csv": day_of_40, "events-again.csv": day_of_40},
            bronze=2 * ROWS_PER_DAY,
            blocking={},
            warnings={
                "event_time,event_type,product_id,category_id,category_code,brand,price,"
                "user_id,user_session": "80 of 80 rows duplicated (100.00%)"
            },
        ),
        Case(
            "volume_spike_10x",
            spike,
            {"events.csv": content(*landing_lines(spike, 10 * ROWS_PER_DAY))},
            bronze=10 * ROWS_PER_DAY,
            blocking={"volume_ratio": "volume ratio 10 (400 rows / median 40 of 3 days)"},
        ),
        Case(
            "user_id_not_a_number",
            "2019-11-11",
            {
                "events.csv": content(
                    *REAL,
                    *(_line("2019-11-11", user=u) for u in ("user42", "", "5.0", "-7", "1e9", "0")),
                    NOT_SILENTLY_FIXED["bad_user_id"],  # 99999999999999999999: beyond a bigint
                )
            },
            bronze=3,
            reasons={"bad_user_id": 7},
        ),
        Case(
            "schema_change_renamed_column",
            "2019-11-12",
            {
                "export.csv": content(
                    _line("2019-11-12"), _line("2019-11-12", kind="cart"), header=renamed
                ),
                # A concatenated export: the renamed header inside a good file.
                "good.csv": content(REAL[0], renamed, REAL[1]),
            },
            bronze=2,
            reasons={"header_mismatch": 4},
            notes=(
                "export.csv: the header is not the REES46 header "
                "(missing price; unexpected price_usd)",
            ),
        ),
        # No other date in the 7 days before: the volume ratio is skipped.
        Case(
            "schema_change_reordered_columns",
            "2019-12-20",
            {
                "export.csv": content(
                    # product_id and user_id swapped: both integers, they would land swapped.
                    "2019-12-20 00:00:01 UTC,view,541312140,2053013552326770905,,acme,9.99,7,s-1",
                    "2019-12-20 00:00:02 UTC,cart,541312140,2053013552326770905,,acme,9.99,7,s-1",
                    header=reordered,
                )
            },
            reasons={"header_mismatch": 3},
            notes=(
                f"export.csv: the header is not the REES46 header (columns in another "
                f"order: {reordered})",
            ),
            blocking={
                ROWS: "0 rows (every one of the 3 lines of the date was quarantined)",
                "quarantine_share": "quarantine share 1 (3 of 3 lines)",
            },
            warnings={"quarantine_share": "quarantine share 1 (3 of 3 lines)"},
        ),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def env(spark, tmp_path_factory):
    """One set of schemas for all cases (one date each) and three days of bronze history, so
    the volume check of the October dates compares with a median of 40 rows."""
    root = tmp_path_factory.mktemp("bad_input")
    base = f"bad_{uuid.uuid4().hex[:8]}"
    schemas = {"bronze": f"{base}_b", "silver": f"{base}_s", "monitoring": f"{base}_m"}
    land_bronze(spark, {ds: landing_lines(ds) for ds in HISTORY}, schemas["bronze"])
    return {"root": root, "landing": str(root / "landing"), **schemas}


def _write(env, ds: str, files: dict[str, bytes]) -> str:
    """The files of a case in ``<landing>/<ds>/`` (no files: no folder); the folder's path."""
    folder = Path(env["landing"]) / ds
    if files:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    return str(folder)


def _ingest_args(env, ds: str) -> list[str]:
    return [
        "--ds",
        ds,
        "--catalog",
        CATALOG,
        "--landing-dir",
        env["landing"],
        "--bronze-schema",
        env["bronze"],
    ]


def _rows_of(spark, env, table: str, ds: str):
    name = f"{CATALOG}.{env['bronze']}.{table}"
    if not spark.catalog.tableExists(name):
        return None
    return spark.table(name).where(F.col("ingest_date") == F.lit(ds).cast("date"))


def _validate(env, ds: str, suites=("bronze_events",)) -> tuple[dict, str]:
    output = str(env["root"] / "reports" / ds / "_".join(suites))
    args = [
        "--ds",
        ds,
        "--catalog",
        CATALOG,
        "--output",
        output,
        "--bronze-schema",
        env["bronze"],
        "--silver-schema",
        env["silver"],
        "--monitoring-schema",
        env["monitoring"],
        "--airflow-run-id",
        f"test__{ds}",
    ]
    for suite in suites:
        args += ["--suite", suite]
    assert validate_main(args) == 0  # failed expectations never fail the job
    with open(f"{output}.json", encoding="utf-8") as handle:
        return json.load(handle), output


def _failures(entries: list[dict]) -> dict[str, str]:
    return {e["column"] or e["expectation"]: e["observed"] for e in entries}


def _assert_observed(actual: dict[str, str], expected: dict[str, str], what: str) -> None:
    assert set(actual) == set(expected), f"{what}: {actual}"
    for key, start in expected.items():
        assert actual[key].startswith(start), f"{what} {key}: {actual[key]!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_has_a_clear_outcome(spark, env, case, capsys):
    folder = _write(env, case.ds, case.files)
    argv = _ingest_args(env, case.ds)

    if case.error:
        with pytest.raises(SystemExit) as failed:
            ingest_main(argv)
        assert failed.value.code == case.error.format(folder=folder)  # one line, no traceback
        for table in ("events", "events_quarantine", BRONZE_INGEST_LOG.table):
            rows = _rows_of(spark, env, table, case.ds)
            assert rows is None or rows.count() == 0, table
        return

    assert ingest_main(argv) == 0
    out = capsys.readouterr().out
    rows_in = lines_in(case.files)
    bronze = _rows_of(spark, env, "events", case.ds).count()
    reasons = {
        r["reason"]: r["count"]
        for r in _rows_of(spark, env, "events_quarantine", case.ds)
        .groupBy("reason")
        .count()
        .collect()
    }
    assert (bronze, reasons) == (case.bronze, case.reasons)
    assert rows_in == bronze + sum(reasons.values()), "rows in != bronze + quarantined"
    [record] = _rows_of(spark, env, BRONZE_INGEST_LOG.table, case.ds).collect()
    assert (record["rows_in"], record["bronze"], record["quarantined"]) == (
        rows_in,
        bronze,
        sum(reasons.values()),
    )
    assert json.loads(record["reasons"]) == case.reasons
    assert f"{case.ds}: rows in      {rows_in}\n" in out
    for note in case.notes:
        assert f"{folder}/{note}" in out
    if case.id == "non_utf8_bytes":  # the exact bytes are kept, the text stays readable
        raw = {
            bytes(r["raw_bytes"])
            for r in _rows_of(spark, env, "events_quarantine", case.ds)
            .select("raw_bytes")
            .collect()
        }
        assert b"br\xe9nd" in b"".join(raw) and b"\xff\xfe" in b"".join(raw)

    if case.blocking is None:
        return
    summary, output = _validate(env, case.ds)
    _assert_observed(_failures(summary["blocking_failures"]), case.blocking, "blocking")
    _assert_observed(_failures(summary["warnings"]), case.warnings, "warnings")
    assert summary["success"] is (not case.blocking)
    # The same results in the report the DAG uploads and in monitoring.dq_results.
    with open(f"{output}.html", encoding="utf-8") as handle:
        page = handle.read()
    assert ("FAILED (blocking)" if case.blocking else "PASSED with warnings") in page
    results = spark.table(DQ_RESULTS.name(CATALOG, env["monitoring"])).where(
        F.col("ds") == F.lit(case.ds).cast("date")
    )
    counts = summary["counts"]
    assert results.count() == counts["evaluated"] + counts["skipped"]
    failed = {
        (r["column"] or r["expectation"], r["severity"]): r["observed_value"]
        for r in results.where("status = 'failed'").collect()
    }
    assert failed == {
        **{(k, "blocking"): v for k, v in _failures(summary["blocking_failures"]).items()},
        **{(k, "warning"): v for k, v in _failures(summary["warnings"]).items()},
    }


def test_an_empty_day_is_reported_by_every_suite_and_reruns_identically(spark, env, capsys):
    """A header-only day: the bronze suite fails its row count (the other row checks are
    skipped, not vacuously passed), a rerun replaces its dq_results rows with the same rows,
    and the silver and feature suites of the day, run as the offline DAG runs them, fail their
    own row count instead of the job (no user was active in 30 days in this schema)."""
    ds = "2019-10-20"
    _write(env, ds, {"events.csv": content(), "late.csv": content()})
    assert ingest_main(_ingest_args(env, ds)) == 0
    assert f"{ds}: note: the file(s) hold no rows (empty or header only)" in capsys.readouterr().out

    summary, _ = _validate(env, ds)
    assert summary["success"] is False
    assert _failures(summary["blocking_failures"]) == {
        ROWS: "0 rows (the 2 file(s) of the date hold no rows: empty or header only)"
    }  # no history in the 7 days before: the volume ratio is skipped, the row count is not
    assert summary["counts"]["skipped"] == 9  # 8 checks of the rows + the volume ratio
    table = DQ_RESULTS.name(CATALOG, env["monitoring"])
    first = spark.table(table).where(F.col("ds") == F.lit(ds).cast("date")).collect()
    skipped = [r for r in first if r["status"] == "skipped"]
    assert {r["observed_value"] for r in skipped if r["column"] != "volume_ratio"} == {
        "no rows to check"
    }
    out = capsys.readouterr().out
    assert f"{ds}: BLOCKING: bronze_events: {ROWS}: observed 0 rows (" in out

    _validate(env, ds)
    assertDataFrameEqual(spark.table(table).where(F.col("ds") == F.lit(ds).cast("date")), first)

    build_silver_events(
        spark, ds=ds, catalog=CATALOG, bronze_schema=env["bronze"], silver_schema=env["silver"]
    )
    build_features(spark, start=ds, end=ds, catalog=CATALOG, silver_schema=env["silver"])
    summary, _ = _validate(env, ds, ("silver_events", "user_features"))
    why = f"0 rows (an empty day: ingest_events landed 0 rows in bronze for {ds} (2 file(s), 0 lines in))"
    assert summary["blocking_failures"] == [
        {"suite": suite, "expectation": ROWS, "column": None, "observed": why, "expected": expected}
        for suite, expected in (
            ("silver_events", ">= 1 event in the event date"),
            ("user_features", ">= 1 user in the feature date"),
        )
    ]
    assert summary["warnings"] == []
    assert summary["counts"]["evaluated"] == 4  # columns and row count of each suite
