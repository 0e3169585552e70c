"""The streaming ingest lands every line of every file exactly once, across triggers and a kill.

Three files of one date land at different times. A trigger runs after the first, another after
the second; the third trigger is SIGKILLed in the middle of its batch, after bronze committed the
batch's rows and before the quarantine and the file record did (``tests/reliability/stall.py``
pauses the quarantine's write). The next trigger replays the batch: Delta's idempotent append
(``txnAppId``/``txnVersion``) skips the bronze rows committed before the kill, the rest lands.

The reference is the batch ingest of today (``ingest_range``) over the same three files: the
stream must leave bronze, the quarantine and the records exactly as it does (all columns), and
the ingest log must say so (3 files, rows in = bronze + quarantined, per file).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ingest_events import main as ingest_main
from pyspark.testing import assertDataFrameEqual

from clickstream.core.schema import HEADER
from clickstream.pipeline.ingest import ingest_range
from tests.support.landing import BAD, CATALOG, landing_lines
from tests.support.processes import ROOT, kill_group, project_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.spark

DS = "2019-10-05"
PARTS = {
    "part-1.csv": landing_lines(DS, 30),
    "part-2.csv": landing_lines(DS, 50, price="5.00"),
    # Bad lines too: the killed batch has rows for the quarantine's write to pause in.
    "part-3.csv": [*landing_lines(DS, 20, price="7.50"), *BAD.values()],
}


def _deliver(landing, name: str) -> None:
    folder = landing / DS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f".{name}.tmp").write_text("\n".join([HEADER, *PARTS[name]]) + "\n")
    (folder / f".{name}.tmp").rename(folder / name)  # as an exporter delivers: whole, at once


def _job(landing, checkpoint, schema: str) -> list[str]:
    return [
        *("--ds", DS, "--catalog", CATALOG, "--landing-dir", str(landing)),
        *("--bronze-schema", schema, "--checkpoint", str(checkpoint)),
    ]


def _trigger(landing, checkpoint, schema: str, *extra: str) -> None:
    assert ingest_main([*_job(landing, checkpoint, schema), *extra]) == 0


def _trigger_killed_mid_batch(local_layout, tmp_path, landing, checkpoint, schema: str) -> None:
    """Run a trigger in its own process, paused in the quarantine's write; SIGKILL it there."""
    marker = tmp_path / "paused"
    with open(tmp_path / "stall.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "tests.reliability.stall", "--state", str(local_layout.state)),
                *("--marker", str(marker)),
                *("--table", f"{CATALOG}.{schema}.events_quarantine"),
                "spark_jobs/ingest_events.py",
                *_job(landing, checkpoint, schema),
            ],
            cwd=ROOT,
            env=project_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for(marker.exists, 600, "the trigger pausing in its batch", 0.2, process)
    except AssertionError as error:
        kill_group(process)
        raise AssertionError(f"{error}\n{(tmp_path / 'stall.log').read_text()[-3000:]}") from None
    kill_group(process)


def _rows(spark, schema: str, table: str):
    return spark.table(f"{schema}.{table}")


def test_three_parts_two_triggers_and_a_kill_land_each_line_once(
    spark, local_layout, tmp_path, new_schema
):
    landing, checkpoint = tmp_path / "landing", tmp_path / "checkpoint"
    schema = new_schema("stream")

    _deliver(landing, "part-1.csv")
    _trigger(landing, checkpoint, schema)
    _deliver(landing, "part-2.csv")
    _trigger(landing, checkpoint, schema)
    log = spark.table(f"{schema}.events_ingest_log").first()
    assert (log["files"], log["rows_in"], log["bronze"]) == (2, 80, 80)

    _deliver(landing, "part-3.csv")
    _trigger_killed_mid_batch(local_layout, tmp_path, landing, checkpoint, schema)
    part_3 = f"{landing}/{DS}/part-3.csv"
    # Killed between the bronze commit and the rest: part 3's rows are in bronze, no record.
    assert _rows(spark, schema, "events").where(f"source_file = '{part_3}'").count() == 20
    recorded = [r.source_file for r in _rows(spark, schema, "events_ingest_files").collect()]
    assert part_3 not in recorded and len(recorded) == 2

    _trigger(landing, checkpoint, schema)  # replays the killed batch

    reference = new_schema("batch")
    ingest_range(
        spark, start=DS, end=DS, catalog=CATALOG, landing_dir=str(landing), schema=reference
    )
    for table in ("events", "events_quarantine"):
        assertDataFrameEqual(_rows(spark, schema, table), _rows(spark, reference, table))
    columns = ["ingest_date", "source_file", "file_size", "modified_at", "rows_in", "bronze"]
    columns += ["quarantined", "reasons", "ingested_at"]
    assertDataFrameEqual(
        _rows(spark, schema, "events_ingest_files").select(columns),
        _rows(spark, reference, "events_ingest_files").select(columns),
    )
    assertDataFrameEqual(
        _rows(spark, schema, "events_ingest_log"), _rows(spark, reference, "events_ingest_log")
    )
    log = spark.table(f"{schema}.events_ingest_log").first()
    total = sum(len(lines) for lines in PARTS.values())
    assert (log["files"], log["rows_in"]) == (3, total)
    assert log["bronze"] + log["quarantined"] == total
    assert json.loads(log["reasons"]) == dict.fromkeys(sorted(BAD), 1)
    for record in _rows(spark, schema, "events_ingest_files").collect():
        assert record.rows_in == record.bronze + record.quarantined
        name = record.source_file.rsplit("/", 1)[-1]
        assert record.rows_in == len(PARTS[name])


def test_a_settled_date_is_rewritten_only_on_a_rerun_or_a_corrected_delivery(
    spark, tmp_path, new_schema
):
    landing, checkpoint = tmp_path / "landing", tmp_path / "checkpoint"
    schema = new_schema("settle")
    _deliver(landing, "part-1.csv")
    _trigger(landing, checkpoint, schema)
    version = spark.sql(f"DESCRIBE HISTORY {schema}.events LIMIT 1").first()["version"]

    # A first try with nothing new for its date (a backfill's later date): no write.
    _trigger(landing, checkpoint, schema)
    assert spark.sql(f"DESCRIBE HISTORY {schema}.events LIMIT 1").first()["version"] == version
    # A retried or cleared task re-ingests its date: a new version, the same rows.
    rows = _rows(spark, schema, "events").collect()
    _trigger(landing, checkpoint, schema, "--try-number", "2")
    version = spark.sql(f"DESCRIBE HISTORY {schema}.events LIMIT 1").first()["version"]
    assertDataFrameEqual(_rows(spark, schema, "events"), rows)
    assert _rows(spark, schema, "events_ingest_files").count() == 1

    # While a continuous stream owns the landing, the daily run only checks the date: quiet
    # when every file is in bronze, failing (no write) on a file the stream has not landed.
    _trigger(landing, checkpoint, schema, "--trigger", "none")
    _deliver(landing, "part-2.csv")
    with pytest.raises(SystemExit, match=f"{DS}: the date's files are not all in bronze"):
        _trigger(landing, checkpoint, schema, "--trigger", "none")
    assert spark.sql(f"DESCRIBE HISTORY {schema}.events LIMIT 1").first()["version"] == version
    (landing / DS / "part-2.csv").unlink()

    # A corrected re-delivery under the same name: the stream never reads a path twice, the
    # date's settle step sees the new size and re-ingests the date from its files.
    PARTS["fixed.csv"] = landing_lines(DS, 12)
    try:
        _deliver(landing, "fixed.csv")
        (landing / DS / "fixed.csv").rename(landing / DS / "part-1.csv")
    finally:
        del PARTS["fixed.csv"]
    _trigger(landing, checkpoint, schema)
    assert _rows(spark, schema, "events").count() == 12
    log = spark.table(f"{schema}.events_ingest_log").first()
    assert (log["files"], log["rows_in"], log["bronze"]) == (1, 12, 12)


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--trigger", "sometimes"], "--trigger 'sometimes': use 'available-now' or 'every <n>"),
        (["--trigger", "every 1 minute"], "--trigger and --source apply to a stream"),
        (["--ingest-ts", "2019-10-06T00:00:00+00:00", "--checkpoint", "c"], "batch ingest"),
    ],
    ids=["unknown_trigger", "trigger_without_checkpoint", "ingest_ts_with_stream"],
)
def test_stream_arguments_that_do_not_fit_are_refused_in_one_line(tmp_path, extra, error):
    argv = ["--ds", DS, "--catalog", CATALOG, "--landing-dir", str(tmp_path), *extra]
    with pytest.raises(SystemExit, match=f"ingest_events failed: .*{error}"):
        ingest_main(argv)


def test_files_the_batch_path_landed_are_skipped_by_the_stream_and_new_ones_land(
    spark, tmp_path, new_schema
):
    """The history load (batch path) records its files; the stream's first trigger sees them
    again (a new checkpoint lists everything) and must land only the file it has not seen."""
    landing, checkpoint = tmp_path / "landing", tmp_path / "checkpoint"
    schema = new_schema("skip")
    _deliver(landing, "part-1.csv")
    ingest_range(spark, start=DS, end=DS, catalog=CATALOG, landing_dir=str(landing), schema=schema)
    _deliver(landing, "part-2.csv")
    _trigger(landing, checkpoint, schema)
    counts = {
        r.source_file.rsplit("/", 1)[-1]: r["count"]
        for r in _rows(spark, schema, "events").groupBy("source_file").count().collect()
    }
    assert counts == {"part-1.csv": 30, "part-2.csv": 50}
    log = spark.table(f"{schema}.events_ingest_log").first()
    assert (log["files"], log["rows_in"], log["bronze"]) == (2, 80, 80)
