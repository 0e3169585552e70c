"""Table maintenance on real Spark, Delta and MLflow: a fragmented table ends in fewer files with
the same rows; the Delta versions the registered models pin stay readable after a VACUUM with a
retention of 0, while a version no one pins is vacuumed (its files gone) and, without the pins,
the same versions are vacuumed too; the job's one-line errors."""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, date, timedelta
from pathlib import Path

import maintain_tables
import pytest
from mlflow import MlflowClient
from pyspark.testing import assertDataFrameEqual

from clickstream.core.contracts import SILVER_EVENTS, ensure_table, table_version, write_partition
from clickstream.maintenance.pins import LineageError, model_pins, pipeline_pins
from clickstream.maintenance.tables import DELETED_FILE_RETENTION, parse_interval
from clickstream.maintenance.tables import maintain_tables as maintain
from clickstream.models import registry
from clickstream.pipeline.activity import refresh_daily_activity
from tests.support.rows import event
from tests.support.tables import committed_files, data_files

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[3]
CATALOG = "spark_catalog"
D1, D2 = date(2019, 10, 1), date(2019, 10, 2)


@pytest.fixture
def schemas(schema_name) -> dict[str, str]:
    """Every schema of the tables in a fresh one of its own (bronze and silver both have an
    ``events`` table)."""
    return {s: f"{schema_name}_{s}" for s in ("bronze", "silver", "gold", "monitoring")}


def _schema_args(schemas: dict[str, str]) -> list[str]:
    return [arg for s, value in schemas.items() for arg in (f"--{s}-schema", value)]


def _location(spark, name: str) -> Path:
    return Path(spark.sql(f"DESCRIBE DETAIL {name}").first()["location"].removeprefix("file:"))


def _num_files(spark, name: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL {name}").first()["numFiles"])


def _rows(first_user: int, users: int, day: date, second: int) -> list[tuple]:
    return [event(u, day, product=u, second=second) for u in range(first_user, first_user + users)]


def _files_of(spark, name: str, version: int) -> set[str]:
    frame = spark.sql(f"SELECT * FROM {name} VERSION AS OF {version}")
    return {f.rsplit("/", 1)[-1] for f in frame.inputFiles()}


def _version_rows(spark, name: str, version: int) -> list:
    """The rows of a version, read from its files (a count could come from the log alone)."""
    return spark.sql(f"SELECT * FROM {name} VERSION AS OF {version}").collect()


# Delta refuses time travel beyond the table's delta.deletedFileRetentionDuration, which the
# job sets. With the seconds of margin of a test (not the days of a deployment) a pinned
# version leaves it seconds after the job: the tests check that the property covered the pin
# when the job ran, and read the files with that refusal lifted: what VACUUM kept or deleted.
GUARD = "spark.databricks.delta.vacuum.enforceTimeTravelWithinDeletedFileRetentionDuration"
MISSING_FILE = "FILE_NOT_EXIST|FileNotFound|DELTA_FILE_NOT_FOUND"


@contextlib.contextmanager
def files_only(spark):
    spark.conf.set(GUARD, "false")
    try:
        yield
    finally:
        spark.conf.unset(GUARD)


def _commit_millis(spark, name: str, version: int) -> int:
    row = spark.sql(f"DESCRIBE HISTORY {name}").where(f"version = {version}").first()
    return int(row["timestamp"].replace(tzinfo=UTC).timestamp() * 1000)


def test_a_fragmented_table_ends_in_fewer_files_with_the_same_rows(spark, silver_events, schemas):
    name = ensure_table(spark, SILVER_EVENTS, CATALOG, schemas["silver"])
    for i in range(8):  # eight small appends to two event-date partitions
        rows = _rows(10 * i, 3, D1, i) + _rows(10 * i, 2, D2, i)
        silver_events(rows).write.format("delta").mode("append").saveAsTable(name)
    before = spark.table(name).collect()
    files_before = _num_files(spark, name)
    assert files_before >= 16
    lines: list[str] = []

    reports = maintain(
        spark,
        catalog=CATALOG,
        retention=timedelta(0),
        pins=[],
        margin=timedelta(0),
        schemas=schemas,
        log=lines.append,
    )

    report = next(r for r in reports if r.name == name)
    assert (report.files_before, report.files_after) == (files_before, 2)  # one per date
    assert _num_files(spark, name) == 2
    assertDataFrameEqual(spark.table(name), before)
    # VACUUM removed the small files: on disk only what the current version reads.
    folder = _location(spark, name)
    assert data_files(folder) == committed_files(spark, folder)
    assert report.vacuumed_files == files_before
    assert report.bytes_after > 0 and report.retention.duration == timedelta(0)
    # Every other table of the schemas does not exist: skipped, and said so.
    others = [r for r in reports if r.name != name]
    assert others and all(r.skipped == "does not exist" for r in others)
    assert (
        f"[maintain] {CATALOG}.{schemas['bronze']}.events: skipped, the table does not exist"
        in lines
    )
    done = next(line for line in lines if line.startswith(f"[maintain] {name}: compacted"))
    assert f"files {files_before} -> 2" in done


def _register(client: MlflowClient, experiment: str, model: str, lineage: dict[str, int]) -> str:
    """A model version registered from a run carrying a training's lineage tags."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    run = client.create_run(experiment_id, tags=registry.delta_version_tags(lineage))
    client.set_terminated(run.info.run_id)
    try:
        client.get_registered_model(model)
    except Exception:
        client.create_registered_model(model)
    version = client.create_model_version(
        model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return str(version.version)


# A pinned version is kept for its age plus the margin: the margin of the test covers the
# seconds between the job reading the clock and VACUUM reading it, and the files of v1 are
# removed longer than that before the oldest pin (v3) is committed.
MARGIN = timedelta(seconds=8)


class History:
    """silver.events written as days of pipeline runs would, with gaps between the commits:

    v1 append A, v2 replace with B (A removed), ``gap`` seconds, v3 append C, v4 replace with D
    (B and C removed), v5 append E, v6 replace with F (D and E removed)."""

    def __init__(self, spark, silver_events, schemas, gap: float = 1.0):
        self.name = ensure_table(spark, SILVER_EVENTS, CATALOG, schemas["silver"])
        self.rows = {}

        def commit(label: str, rows: list[tuple], replace: bool) -> None:
            frame = silver_events(rows)
            if replace:
                write_partition(spark, frame, SILVER_EVENTS, CATALOG, "true", schemas["silver"])
            else:
                frame.write.format("delta").mode("append").saveAsTable(self.name)
            self.rows[label] = rows
            time.sleep(gap if label == "B" else 1.0)

        commit("A", _rows(1, 4, D1, 1), replace=False)
        commit("B", _rows(11, 4, D1, 2), replace=True)
        commit("C", _rows(21, 4, D2, 3), replace=False)
        commit("D", _rows(31, 4, D1, 4), replace=True)
        commit("E", _rows(41, 4, D2, 5), replace=False)
        commit("F", _rows(51, 4, D1, 6), replace=True)
        self.files = {v: _files_of(spark, self.name, v) for v in range(1, 7)}


def test_the_versions_registered_models_pin_stay_readable_and_the_rest_is_vacuumed(
    spark, silver_events, schemas, tracking, capsys
):
    history = History(spark, silver_events, schemas, gap=MARGIN.total_seconds() + 6)
    name = history.name
    client = MlflowClient()
    propensity, recommender = (f"{m}_{uuid.uuid4().hex[:8]}" for m in ("prop", "rec"))
    # An older propensity version, no longer champion, still registered: it pins v3.
    _register(client, tracking, propensity, {name: 3})
    champion = _register(client, tracking, propensity, {name: 6})
    client.set_registered_model_alias(propensity, registry.CHAMPION, champion)
    # The recommender's champion pins v5.
    rec = _register(client, tracking, recommender, {name: 5})
    client.set_registered_model_alias(recommender, registry.CHAMPION, rec)

    margin_hours = str(MARGIN / timedelta(hours=1))
    argv = ["--catalog", CATALOG, "--retention-hours", "0", "--pin-margin-hours", margin_hours]
    argv += ["--model-name", propensity, "--model-name", recommender, *_schema_args(schemas)]
    started = time.time() * 1000
    assert maintain_tables.main(argv) == 0

    # The table's retention covered the oldest pin, v3, when the job ran: VACUUM and time
    # travel both read it from the table.
    properties = spark.sql(f"DESCRIBE DETAIL {name}").first()["properties"]
    kept = parse_interval(properties[DELETED_FILE_RETENTION])
    assert kept >= timedelta(milliseconds=started - _commit_millis(spark, name, 3))
    rows = history.rows
    on_disk = data_files(_location(spark, name))
    with files_only(spark):
        # The pinned versions read exactly their rows, from their files.
        assertDataFrameEqual(_version_rows(spark, name, 3), rows["B"] + rows["C"])
        assertDataFrameEqual(_version_rows(spark, name, 5), rows["D"] + rows["E"])
        assert history.files[3] | history.files[5] | history.files[6] <= on_disk
        # v1 was pinned by no one and its files were removed before the oldest pin: they are
        # gone and the version cannot be read.
        assert history.files[1] and not history.files[1] & on_disk
        with pytest.raises(Exception, match=MISSING_FILE):
            _version_rows(spark, name, 1)
    assertDataFrameEqual(spark.table(name), rows["F"])
    out = capsys.readouterr().out
    assert f"[maintain] pinned: {name} v3 by {propensity} v1" in out
    assert f"[maintain] pinned: {name} v5 by {recommender} v1 [champion]" in out
    assert f"to keep v3 for {propensity} v1, committed" in out
    assert "below Delta's 7-day default" in out


def test_without_the_pins_the_same_versions_are_vacuumed(spark, silver_events, schemas):
    history = History(spark, silver_events, schemas)
    maintain(
        spark,
        catalog=CATALOG,
        retention=timedelta(0),
        pins=[],
        margin=timedelta(0),
        schemas=schemas,
        log=lambda _line: None,
    )
    folder = _location(spark, history.name)
    assert data_files(folder) == committed_files(spark, folder)
    with files_only(spark):
        for version in (1, 3, 5):
            with pytest.raises(Exception, match=MISSING_FILE):
                _version_rows(spark, history.name, version)


def test_a_version_whose_lineage_cannot_be_read_stops_the_job_before_any_table(
    spark, silver_events, schemas, tracking
):
    name = ensure_table(spark, SILVER_EVENTS, CATALOG, schemas["silver"])
    silver_events(_rows(1, 3, D1, 1)).write.format("delta").mode("append").saveAsTable(name)
    client = MlflowClient()
    model = f"broken_{uuid.uuid4().hex[:8]}"
    version = _register(client, tracking, model, {})
    run_id = client.get_model_version(model, version).run_id
    client.set_tag(run_id, f"{registry.DELTA_VERSION_TAG}{name}", "latest")
    with pytest.raises(LineageError, match=rf"{model} v{version}: lineage tag .* is not"):
        model_pins(client, [model])
    argv = ["--catalog", CATALOG, "--retention-hours", "0", "--model-name", model]
    with pytest.raises(SystemExit) as stopped:
        maintain_tables.main([*argv, *_schema_args(schemas)])
    message = stopped.value.code
    assert message.startswith("maintain_tables failed: ") and "\n" not in message
    assert "nothing was vacuumed" in message
    history = spark.sql(f"DESCRIBE HISTORY {name}").select("operation").collect()
    assert {r["operation"] for r in history} == {"CREATE TABLE", "WRITE"}


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--zorder-since", "2019-10-01' OR '1'='1", "a date must be YYYY-MM-DD"),
        ("--model-name", "m' OR name LIKE '%", "is not a registered model name"),
        ("--catalog", "x; DROP TABLE y", "is not a valid catalog/schema/table identifier"),
    ],
)
def test_a_crafted_argument_is_refused_in_one_line(flag, value, expected):
    argv = {"--catalog": CATALOG, "--retention-hours": "0", "--model-name": "m", flag: value}
    with pytest.raises(SystemExit) as refused:
        maintain_tables.main([part for item in argv.items() for part in item])
    assert refused.value.code.startswith("maintain_tables failed: ")
    assert expected in refused.value.code


def test_the_daily_activitys_last_refresh_pins_the_silver_version_it_read(
    spark, silver_events, schemas
):
    silver = schemas["silver"]
    assert pipeline_pins(spark, catalog=CATALOG, silver_schema=silver) == []  # no activity yet
    name = ensure_table(spark, SILVER_EVENTS, CATALOG, silver)
    silver_events(_rows(1, 3, D1, 1)).write.format("delta").mode("append").saveAsTable(name)
    refresh_daily_activity(spark, catalog=CATALOG, silver_schema=silver, progress=print)
    read = table_version(spark, name)
    # Silver moves on; the next feature run will read its change feed after `read`.
    silver_events(_rows(5, 3, D2, 2)).write.format("delta").mode("append").saveAsTable(name)
    [pin] = pipeline_pins(spark, catalog=CATALOG, silver_schema=silver)
    assert (pin.table, pin.version) == (name, read)
    assert pin.holder.startswith("the daily activity's last refresh")


def test_the_dags_parameters_run_the_job(spark, silver_events, schemas, tracking, capsys):
    """The job task of dags/table_maintenance.py, rendered for the run of 2019-10-09 (local
    environment), runs the job: the partitions from a week before are Z-ordered, the older
    ones compacted, nothing younger than the hour of local retention is vacuumed."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.execution_time import macros

    from ecom_airflow.tasks import job_task

    dag = DagBag(dag_folder=str(ROOT / "dags" / "table_maintenance.py")).dags["table_maintenance"]
    [task] = dag.tasks
    template = dag.get_template_env()
    parameters = [
        template.from_string(p).render(ds="2019-10-09", macros=macros)
        for p in job_task(task.json)["spark_python_task"]["parameters"]
    ]
    name = ensure_table(spark, SILVER_EVENTS, CATALOG, schemas["silver"])
    for i in range(3):
        rows = _rows(10 * i, 2, D1, i) + _rows(10 * i, 2, D2, i)
        silver_events(rows).write.format("delta").mode("append").saveAsTable(name)
    before = spark.table(name).collect()

    assert maintain_tables.main([*parameters, *_schema_args(schemas)]) == 0

    out = capsys.readouterr().out
    assert (
        f"[maintain] {name}: compacted (WHERE event_date >= DATE'2019-10-02' ZORDER BY "
        "(user_id); WHERE event_date < DATE'2019-10-02'): files 6 -> 2" in out
    )
    assert f"[maintain] {name}: retention 1 h (the configured retention)" in out
    assert f"[maintain] {name}: VACUUM deleted 0 files" in out
    assertDataFrameEqual(spark.table(name), before)
