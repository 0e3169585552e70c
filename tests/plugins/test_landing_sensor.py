"""LandingFilesSensor in real DAG runs against the local workspace's Files API.

Each scenario has its own landing folder on the workspace's Volume; the files are written
through the Files API as a delivery would be, and the sensor lists the folder with the
``databricks_default`` connection the jobs use.
"""

from __future__ import annotations

import threading
import time
import uuid

import pendulum
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException

from clickstream.core.schema import HEADER
from ecom_plugins import LandingFilesSensor
from ecom_plugins.landing_sensor import list_folder
from tests.support.airflow import serialize, xcom

pytestmark = pytest.mark.airflow

LOGICAL_DATE = pendulum.datetime(2019, 10, 1, tz="UTC")
DS = "2019-10-01"


class _Scenario:
    """A DAG ``wait_for_landing_files -> ingest`` watching its own landing folder."""

    def __init__(self, put_volume_file, **sensor_kwargs):
        self.put = put_volume_file
        suffix = uuid.uuid4().hex[:8]
        self.landing = f"/Volumes/ecom/raw/landing/test_{suffix}"
        self.folder = f"{self.landing}/{DS}"
        sensor_kwargs.setdefault("poke_interval", 1)
        with DAG(
            dag_id=f"landing_{suffix}",
            schedule=None,
            start_date=pendulum.datetime(2019, 10, 1, tz="UTC"),
            default_args={"retries": 0},
        ) as self.dag:
            LandingFilesSensor(
                task_id="wait_for_landing_files",
                folder=f"{self.landing}/{{{{ ds }}}}",
                **sensor_kwargs,
            ) >> EmptyOperator(task_id="ingest")
        serialize(self.dag)

    def deliver(self, name: str, content: bytes | str = f"{HEADER}\n") -> None:
        self.put(f"{self.folder}/{name}", content)

    def run(self):
        self.dag_run = self.dag.test(logical_date=LOGICAL_DATE)
        self.states = {ti.task_id: ti.state for ti in self.dag_run.get_task_instances()}
        return self.dag_run

    def returned(self):
        return xcom(self.dag.dag_id, self.dag_run.run_id, "wait_for_landing_files", "return_value")


@pytest.mark.parametrize(
    "names",
    [["events.csv"], ["events.csv.gz"], ["late.csv", "events.csv.gz", "notes.txt"]],
    ids=["csv", "csv_gz", "several"],
)
def test_a_file_to_ingest_lets_the_run_through(airflow_db, databricks_conn, put_volume_file, names):
    scenario = _Scenario(put_volume_file, timeout=60)
    for name in names:
        scenario.deliver(name)
    assert scenario.run().state == "success"
    assert scenario.states == {"wait_for_landing_files": "success", "ingest": "success"}
    # The files the ingest job will read, as XCom.
    assert scenario.returned() == sorted(n for n in names if not n.endswith(".txt"))


def test_an_empty_file_counts_as_delivered(airflow_db, databricks_conn, put_volume_file):
    """A 0-byte file is a delivery: the ingest lands 0 rows and the quality gate names it."""
    scenario = _Scenario(put_volume_file, timeout=60)
    scenario.deliver("events.csv", b"")
    assert scenario.run().state == "success"


def test_no_folder_times_out_naming_the_folder_and_patterns(
    airflow_db, databricks_conn, put_volume_file, capfd
):
    scenario = _Scenario(put_volume_file, timeout=2)
    started = time.monotonic()
    assert scenario.run().state == "failed"
    assert time.monotonic() - started >= 2
    assert scenario.states == {"wait_for_landing_files": "failed", "ingest": "upstream_failed"}
    log = "".join(capfd.readouterr())
    waited = f"{scenario.folder}/*.csv or {scenario.folder}/*.csv.gz"
    assert f"Waiting for {waited}: the folder does not exist yet" in log
    assert f"No complete delivery appeared within 2 s: waited for {waited}" in log
    assert "AirflowSensorTimeout" in log


def test_other_files_alone_do_not_count(airflow_db, databricks_conn, put_volume_file, capfd):
    scenario = _Scenario(put_volume_file, timeout=2)
    scenario.deliver("events.txt")
    scenario.deliver(".events.csv")  # hidden: an upload in progress, as Spark skips it
    scenario.deliver("_events.csv.gz")
    scenario.deliver("events.CSV")  # the ingest job matches case-sensitively
    scenario.put(f"{scenario.folder}/part.csv/inner.txt", "x")  # a folder named like a file
    assert scenario.run().state == "failed"
    assert scenario.states["wait_for_landing_files"] == "failed"
    log = "".join(capfd.readouterr())
    waited = f"{scenario.folder}/*.csv or {scenario.folder}/*.csv.gz"
    assert f"Waiting for {waited}: the folder holds .events.csv, _events.csv.gz, " in log
    assert f"No complete delivery appeared within 2 s: waited for {waited}" in log


def test_the_sensor_reschedules_until_the_file_arrives(
    airflow_db, databricks_conn, put_volume_file
):
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.settings import Session

    scenario = _Scenario(put_volume_file, timeout=60)
    writer = threading.Timer(3, scenario.deliver, args=("events.csv",))
    writer.start()
    try:
        started = time.monotonic()
        assert scenario.run().state == "success"
    finally:
        writer.join()
    assert time.monotonic() - started >= 3
    assert scenario.returned() == ["events.csv"]
    ti = next(
        t for t in scenario.dag_run.get_task_instances() if t.task_id == "wait_for_landing_files"
    )
    with Session() as session:
        assert session.query(TaskReschedule).filter_by(ti_id=ti.id).count() >= 1


def test_defaults_and_refusals(databricks_conn):
    sensor = LandingFilesSensor(task_id="wait", folder="/Volumes/ecom/raw/landing/events/x/")
    assert sensor.mode == "reschedule"
    assert sensor.patterns == ("*.csv", "*.csv.gz")
    assert sensor.template_fields == ("folder",)
    assert sensor.waited_for == (
        "/Volumes/ecom/raw/landing/events/x/*.csv or /Volumes/ecom/raw/landing/events/x/*.csv.gz"
    )
    assert sensor.matching(["b.csv", "a.csv.gz", "c.csv.tmp", ".d.csv", "e.txt"]) == [
        "a.csv.gz",
        "b.csv",
    ]
    with pytest.raises(AirflowException, match="is not a Unity Catalog Volume path"):
        list_folder("s3://bucket/landing", databricks_conn_id=databricks_conn)


def _run_with_late(scenario, late: list[str], after: float = 3):
    """Run the scenario's DAG while ``late`` files arrive ``after`` seconds into the run."""
    writer = threading.Timer(after, lambda: [scenario.deliver(name) for name in late])
    writer.start()
    try:
        started = time.monotonic()
        scenario.run()
    finally:
        writer.join()
    return time.monotonic() - started


@pytest.mark.parametrize(
    ("rule", "early", "late"),
    [
        ("files 3", ["part-1.csv", "part-2.csv"], ["part-3.csv"]),
        ("marker _SUCCESS", ["part-1.csv", "part-2.csv", "part-3.csv"], ["_SUCCESS"]),
    ],
    ids=["file_count", "marker"],
)
def test_the_completeness_rule_holds_the_day_until_the_last_part(
    airflow_db, databricks_conn, put_volume_file, rule, early, late
):
    scenario = _Scenario(put_volume_file, timeout=60, completeness=rule)
    for name in early:
        scenario.deliver(name)
    took = _run_with_late(scenario, late)
    assert scenario.dag_run.state == "success"
    assert took >= 3  # not let through on the first parts
    assert scenario.returned() == ["part-1.csv", "part-2.csv", "part-3.csv"]


@pytest.mark.parametrize(
    ("rule", "delivered", "waiting"),
    [
        ("files 3", ["part-1.csv", "part-2.csv"], "2 of 3 files"),
        ("marker _SUCCESS", ["part-1.csv"], "no _SUCCESS marker yet (1 file(s) so far)"),
        ("settle 1h", ["part-1.csv"], "(waiting for 3600 s)"),
    ],
    ids=["file_count", "marker", "settle"],
)
def test_an_incomplete_day_times_out_saying_what_it_lacks(
    airflow_db, databricks_conn, put_volume_file, capfd, rule, delivered, waiting
):
    scenario = _Scenario(put_volume_file, timeout=2, completeness=rule)
    for name in delivered:
        scenario.deliver(name)
    assert scenario.run().state == "failed"
    assert scenario.states == {"wait_for_landing_files": "failed", "ingest": "upstream_failed"}
    log = "".join(capfd.readouterr())
    assert waiting in log
    assert "No complete delivery appeared within 2 s" in log


def test_settle_lets_the_day_through_once_no_file_changed_for_its_time(
    airflow_db, databricks_conn, put_volume_file
):
    scenario = _Scenario(put_volume_file, timeout=60, completeness="settle 4s")
    scenario.deliver("part-1.csv")
    took = _run_with_late(scenario, ["part-2.csv"], after=2)
    assert scenario.dag_run.state == "success"
    assert took >= 2 + 4  # the late part restarted the quiet time
    assert scenario.returned() == ["part-1.csv", "part-2.csv"]


@pytest.mark.parametrize(
    "rule", ["", "some", "marker", "marker a/b", "files 0", "files x", "settle 5", "settle 5d"]
)
def test_a_malformed_rule_is_refused_naming_the_rules(rule):
    with pytest.raises(ValueError, match="is not one of: 'any', 'marker <file name>'"):
        LandingFilesSensor(task_id="wait", folder="/Volumes/x/y/z", completeness=rule)
