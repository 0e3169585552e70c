"""A job killed in the middle of a Delta write leaves no partial data, and its rerun heals.

The job runs in its own process (``python -m tests.reliability.stall``, the fault injection
kept out of the production code), paused inside the Spark job that writes the table: its
partition 0 waits after one row while partitions 1 and 2 write their data files. The test waits
for those files, then SIGKILLs the process group (driver, JVM): data files on disk, no commit in
the Delta log. Delta's atomic commit must show every table exactly as before the run (the
date's previous version, or nothing for a date not written yet), and a rerun must leave the
tables of a clean run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from build_silver_events import main as silver_main
from pyspark.testing import assertDataFrameEqual

from clickstream.core.jobs import JobError
from clickstream.pipeline.silver import build_silver_events
from tests.support.landing import DAYS, LANDING, ingest
from tests.support.processes import ROOT, kill_group, project_env
from tests.support.tables import (
    assert_tables_equal,
    committed_files,
    data_files,
    delta_version,
    snapshot,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.spark

D1, D2 = DAYS[0], DAYS[1]
CATALOG = "spark_catalog"


# The ingest job of D2 into the test's bronze schema, as the workspace would run it.
INGEST_D2 = [
    "spark_jobs/ingest_events.py",
    *("--ds", D2, "--catalog", CATALOG, "--landing-dir", LANDING, "--bronze-schema", "kw_bronze"),
]


def _silver(bronze: str, silver: str, ds: str) -> None:
    silver_main(
        ["--ds", ds, "--catalog", CATALOG, "--bronze-schema", bronze, "--silver-schema", silver]
    )


@pytest.fixture(scope="module")
def kill_volumes(spark, volumes, bronze_sequential, tmp_path_factory):
    """A Volume where D2 first arrives half-delivered, and the schemas before the faults:

    * ``kw_bronze``: D1, and D2 as first delivered (the first half of its lines); then the
      complete D2 is delivered again to the same path. The clean run of that is
      ``bronze_sequential`` (the same days and path, ingested once);
    * ``kw_silver``: D1 merged from the clean bronze; ``kw_silver_ref``: D1 then D2.
    """
    root = tmp_path_factory.mktemp("kill") / "volumes"
    folder = root / LANDING.removeprefix("/Volumes/")
    source = volumes / LANDING.removeprefix("/Volumes/")
    for ds in (D1, D2):
        shutil.copytree(source / ds, folder / ds)
    complete = (folder / D2 / "events.csv").read_text()
    header, *lines = complete.splitlines(keepends=True)
    (folder / D2 / "events.csv").write_text(header + "".join(lines[: len(lines) // 2]))
    for ds in (D1, D2):
        ingest(root, "kw_bronze", ds)
    (folder / D2 / "events.csv").write_text(complete)  # the corrected re-delivery
    for ds in (D1, D2):
        _silver(bronze_sequential, "kw_silver_ref", ds)
    _silver(bronze_sequential, "kw_silver", D1)
    return root


def _kill_while_writing(
    local_layout,
    volumes_dir,
    tmp_path,
    table_dir,
    target: list[str],
    job: list[str],
    files: bool = True,
):
    """Run ``job`` paused in the write of ``table_dir``; SIGKILL it once data files of the
    write are on disk (``files``; else once it paused). Returns those files (written, never
    committed)."""
    before = data_files(table_dir)
    marker = tmp_path / "paused"
    with open(tmp_path / "stall.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.stall",
                "--state",
                str(local_layout.state),
                "--marker",
                str(marker),
                *target,
                *job,
            ],
            cwd=ROOT,
            env=project_env(LOCAL_VOLUMES_ROOT=str(volumes_dir)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for(marker.exists, 600, "the job pausing in its write", 0.2, process)
        written = files and wait_for(
            lambda: data_files(table_dir) - before, 300, "data files of the write", 0.1, process
        )
    except AssertionError as error:
        kill_group(process)
        raise AssertionError(f"{error}\n{(tmp_path / 'stall.log').read_text()[-3000:]}") from None
    kill_group(process)
    return written


def test_ingest_killed_mid_write_shows_the_previous_version_and_its_rerun_heals(
    spark, local_layout, kill_volumes, bronze_sequential, tmp_path
):
    before = snapshot(spark, "kw_bronze")
    version = delta_version(spark, "kw_bronze.events")
    table_dir = local_layout.warehouse_dir / "kw_bronze.db" / "events"

    written = _kill_while_writing(
        local_layout,
        kill_volumes,
        tmp_path,
        table_dir,
        ["--table", f"{CATALOG}.kw_bronze.events"],
        INGEST_D2,
    )

    # The killed write's files are on disk, none of them is part of the table.
    assert written and not written & committed_files(spark, table_dir)
    assert delta_version(spark, "kw_bronze.events") == version
    # Every bronze table exactly as before: D2 still as first delivered, nothing half-new.
    assert_tables_equal(spark, "kw_bronze", before)

    ingest(kill_volumes, "kw_bronze", D2)  # the rerun (Airflow's retry or an on-call clear)
    clean = snapshot(spark, bronze_sequential, where=f"ingest_date IN ('{D1}', '{D2}')")
    assert len(before["events"]) < len(clean["events"])  # the previous version was different
    assert_tables_equal(spark, "kw_bronze", clean)


def test_ingest_killed_between_its_table_commits_leaves_the_log_unchanged_and_its_rerun_heals(
    spark, local_layout, kill_volumes, bronze_sequential, tmp_path
):
    """Ingest commits its tables one after another: events, quarantine, file records, ingest
    log (the date's commit record). Killed
    after the first commit (paused just before the quarantine write), the date's events are the
    new delivery's while its quarantine and ingest log still describe the previous one; the task failed, so nothing downstream ran for
    the date, and the rerun replaces all three."""
    folder = kill_volumes / LANDING.removeprefix("/Volumes/") / D2
    complete = (folder / "events.csv").read_text()
    header, *lines = complete.splitlines(keepends=True)
    (folder / "events.csv").write_text(header + "".join(lines[: len(lines) // 2]))
    # D2 as first delivered (the other test may have healed it).
    ingest(kill_volumes, "kw_bronze", D2)
    (folder / "events.csv").write_text(complete)
    before = snapshot(spark, "kw_bronze")
    table_dir = local_layout.warehouse_dir / "kw_bronze.db" / "events_quarantine"
    quarantine_files = data_files(table_dir)

    _kill_while_writing(
        local_layout,
        kill_volumes,
        tmp_path,
        table_dir,
        ["--before-table", f"{CATALOG}.kw_bronze.events_quarantine"],
        INGEST_D2,
        files=False,
    )

    assert data_files(table_dir) == quarantine_files
    clean = snapshot(spark, bronze_sequential, where=f"ingest_date IN ('{D1}', '{D2}')")
    # events: the new delivery, committed whole; quarantine and the ingest log: as before.
    assertDataFrameEqual(spark.table("kw_bronze.events"), clean["events"])
    for table in ("events_quarantine", "events_ingest_log"):
        assertDataFrameEqual(spark.table(f"kw_bronze.{table}"), before[table])
    # The log still describes the first delivery: the date is not marked re-ingested.
    assert clean["events_ingest_log"] != before["events_ingest_log"]
    # The log is the date's commit record: silver refuses to build on the uncommitted events.
    silver = {"ds": D2, "catalog": CATALOG, "bronze_schema": "kw_bronze"}
    with pytest.raises(JobError, match="stopped before its commit; rerun ingest_events"):
        build_silver_events(spark, **silver, silver_schema="kw_between_refused")

    ingest(kill_volumes, "kw_bronze", D2)
    assert_tables_equal(spark, "kw_bronze", clean)
    # ...and builds once the rerun committed the date.
    assert build_silver_events(spark, **silver, silver_schema="kw_between_built")["events"] > 0


def test_silver_merge_killed_mid_write_shows_nothing_of_the_date_and_its_rerun_heals(
    spark, local_layout, kill_volumes, bronze_sequential, tmp_path
):
    before = snapshot(spark, "kw_silver")
    version = delta_version(spark, "kw_silver.events")
    table_dir = local_layout.warehouse_dir / "kw_silver.db" / "events"
    job = [
        "spark_jobs/build_silver_events.py",
        "--ds",
        D2,
        "--catalog",
        CATALOG,
        "--bronze-schema",
        bronze_sequential,
        "--silver-schema",
        "kw_silver",
    ]

    written = _kill_while_writing(local_layout, kill_volumes, tmp_path, table_dir, ["--merge"], job)

    assert written and not written & committed_files(spark, table_dir)
    assert delta_version(spark, "kw_silver.events") == version
    # D2's events (and D2's late events of D1) are not visible at all; D1 as before.
    assert_tables_equal(spark, "kw_silver", before)

    _silver(bronze_sequential, "kw_silver", D2)
    assert_tables_equal(spark, "kw_silver", "kw_silver_ref")
