"""DAG integrity: every DAG imports, follows the project's conventions and parses cheaply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor

from ecom_airflow.alerts import notify_failure
from ecom_airflow.config import LOCAL

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY_MODULES = ("pyspark", "pandas", "sklearn", "mlflow", "great_expectations", "evidently")


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {Path(d.fileloc).name for d in dagbag.dags.values()} == {p.name for p in DAG_FILES}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_conventions(dagbag, dag_file):
    dags = [d for d in dagbag.dags.values() if Path(d.fileloc) == dag_file]
    assert len(dags) == 1, "one DAG per file"
    dag = dags[0]
    assert dag.dag_id == dag_file.stem, "the DAG id is the file name"
    assert dag.tags, "DAGs are tagged"
    for section in ("Owner", "What a failure means", "Rerun", "Backfill", "Input", "Output"):
        assert dag.doc_md and section in dag.doc_md, f"the runbook has no '{section}'"
    assert dag.max_active_runs <= 3, "bounded concurrency per DAG"
    assert dag.schedule is not None
    assert dag.catchup is False, "backfills are explicit, never an accidental catch-up"
    assert dag.start_date == pendulum.datetime(2019, 10, 1, tz="UTC")
    for task in dag.tasks:
        assert task.owner == "ml-platform", task.task_id
        if isinstance(task, ExternalTaskSensor):
            # A failed upstream date is an outcome: the sensor fails at once, no retry.
            assert task.retries == 0, task.task_id
        else:
            assert task.retries >= 1, task.task_id
        assert task.on_failure_callback == [notify_failure], task.task_id
        if isinstance(task, DatabricksSubmitRunOperator):
            # The Airflow timeout is passed on: a Databricks run never outlives its task.
            assert task.execution_timeout is not None, task.task_id
            timeout = task.json["timeout_seconds"]
            assert timeout == task.execution_timeout.total_seconds(), task.task_id
            assert task.pool == LOCAL.databricks_pool, task.task_id
            assert task.retry_exponential_backoff, task.task_id


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_does_not_import_heavy_libraries(dag_file, tmp_path):
    """Parsing runs in the scheduler's dag-processor every 30 s: keep it light."""
    probe = (
        "import json, runpy, sys; runpy.run_path(sys.argv[1]); "
        "top = {m.split('.')[0] for m in sys.modules}; "
        f"print(json.dumps(sorted(top & set({HEAVY_MODULES!r}))))"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe, str(dag_file)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_every_job_script_referenced_by_a_dag_exists(dagbag):
    scripts = [
        task.json["tasks"][0]["spark_python_task"]["python_file"]
        for dag in dagbag.dags.values()
        for task in dag.tasks
        if isinstance(task, DatabricksSubmitRunOperator)
    ]
    assert scripts
    for script in scripts:
        assert (ROOT / script).is_file(), script


# The daily chain: each DAG waits for its upstream DAG's run of the same logical date.
CHAIN = {
    "offline_feature_table": "data_quality_validation",
    "online_feature_table": "offline_feature_table",
}


@pytest.mark.parametrize(("dag_id", "upstream"), CHAIN.items())
def test_daily_dags_wait_for_their_upstream_dag_first(dagbag, dag_id, upstream):
    from airflow.providers.standard.sensors.external_task import ExternalTaskSensor

    dag = dagbag.dags[dag_id]
    sensors = [t for t in dag.tasks if isinstance(t, ExternalTaskSensor)]
    assert [s.external_dag_id for s in sensors] == [upstream]
    assert sensors[0].deferrable
    # Every other task runs after the sensor.
    assert dag.roots == sensors
    assert dag.schedule == dagbag.dags[upstream].schedule


def test_features_of_a_date_run_only_after_the_previous_date(dagbag):
    """The 30-day horizon must be in silver: features of D-1 before D (depends_on_past)."""
    dag = dagbag.dags["offline_feature_table"]
    assert dag.get_task("build_user_features").depends_on_past is True
    assert dag.get_task("build_silver_events").depends_on_past is False


def test_online_dag_checks_skew_after_publishing(dagbag):
    dag = dagbag.dags["online_feature_table"]
    skew = dag.get_task("check_online_skew")
    assert skew.upstream_task_ids == {"publish_online_features"}
    assert "--check-skew" in skew.json["tasks"][0]["spark_python_task"]["parameters"]
    assert "sync_online_store" not in dag.task_ids  # no online store locally


def _parse_elsewhere(tmp_path, dag_file: str, probe: str, **variables: str):
    """The last line ``probe`` prints (JSON) after parsing ``dags/<dag_file>`` as a
    deployment's DAG processor would: a fresh process with ``variables`` set on top of a
    Databricks environment's (``ECOM_ENV=prod``, a pinned git source)."""
    setup = "import json, sys; from airflow.dag_processing.dagbag import DagBag; "
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")]),
        "ECOM_ENV": "prod",
        "ECOM_GIT_URL": "https://git.example.com/ecom.git",
        "ECOM_GIT_REF": "v1.0.0",
        "AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS": "True",
        **variables,
    }
    result = subprocess.run(
        [sys.executable, "-c", setup + probe, str(ROOT / "dags" / dag_file)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_online_store_sync_is_a_configuration_switch(tmp_path):
    """With ECOM_ONLINE_SYNC_PIPELINE_ID set, the DAG triggers the synced online table."""
    probe = (
        "bag = DagBag(dag_folder=sys.argv[1]); assert not bag.import_errors, bag.import_errors; "
        "t = bag.dags['online_feature_table'].get_task('sync_online_store'); "
        "print(json.dumps([sorted(t.upstream_task_ids), t.json['tasks'][0]['pipeline_task']]))"
    )
    upstream, task = _parse_elsewhere(
        tmp_path,
        "online_feature_table.py",
        probe,
        ECOM_ONLINE_SYNC_PIPELINE_ID="pipeline-123",
    )
    assert upstream == ["check_online_skew"]
    assert task == {"pipeline_id": "pipeline-123"}


@pytest.mark.parametrize(
    ("env", "setting", "refused"),
    [
        ("prod", "False", True),
        ("prod", "True", False),
        ("local", "False", False),  # the local stack sets it itself; tests parse without it
    ],
)
def test_a_deployment_that_would_not_rerun_a_cleared_task_refuses_to_load(
    tmp_path, env, setting, refused
):
    """Outside the local stack the DAGs import only with [state_store] clear_on_success on."""
    probe = (
        "bag = DagBag(dag_folder=sys.argv[1]); "
        "print(json.dumps({'errors': list(bag.import_errors.values()), 'dags': list(bag.dags)}))"
    )
    loaded = _parse_elsewhere(
        tmp_path,
        "model_training.py",
        probe,
        ECOM_ENV=env,
        AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS=setting,
    )
    if refused:
        assert loaded["dags"] == [] and len(loaded["errors"]) == 1
        assert "[state_store] clear_on_success is off" in loaded["errors"][0]
        assert "AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS=True" in loaded["errors"][0]
    else:
        assert loaded == {"errors": [], "dags": ["model_training"]}


def _downstream_chain(dag, first: str) -> list[str]:
    """Task ids from ``first`` following the single downstream task each time."""
    chain = [first]
    while downstream := sorted(dag.get_task(chain[-1]).downstream_task_ids):
        assert len(downstream) == 1, f"{chain[-1]} branches: {downstream}"
        chain.append(downstream[0])
    return chain


@pytest.mark.parametrize(
    ("dag_id", "first", "report"),
    [
        ("data_quality_validation", "ingest_events", "bronze_events"),
        ("offline_feature_table", "build_user_features", "features"),
    ],
)
def test_quality_report_is_uploaded_before_the_gate_decides(dagbag, dag_id, first, report):
    """A failing validation still publishes its report: the gate is the last task."""
    dag = dagbag.dags[dag_id]
    assert _downstream_chain(dag, first)[-3:] == [
        f"validate_{report}",
        f"upload_{report}_report",
        f"check_{report}_gate",
    ]
    validate = dag.get_task(f"validate_{report}")
    params = validate.json["tasks"][0]["spark_python_task"]["parameters"]
    output = params[params.index("--output") + 1]
    assert output == f"/Volumes/ecom/raw/reports/{dag_id}/{{{{ ds }}}}/{report}"
    assert dag.get_task(f"upload_{report}_report").report_path == f"{output}.html"
    assert dag.get_task(f"check_{report}_gate").summary_path == f"{output}.json"


def test_quality_dag_waits_for_the_landing_files_first(dagbag):
    """No file for the date: the run waits (no worker slot held), then fails naming the folder."""
    from ecom_plugins import LandingFilesSensor
    from ecom_plugins.landing_sensor import Completeness

    dag = dagbag.dags["data_quality_validation"]
    wait = dag.get_task("wait_for_landing_files")
    assert isinstance(wait, LandingFilesSensor)
    assert dag.roots == [wait]
    assert _downstream_chain(dag, wait.task_id) == [
        "wait_for_landing_files",
        "ingest_events",
        "validate_bronze_events",
        "upload_bronze_events_report",
        "check_bronze_events_gate",
    ]
    # The folder the ingest job reads, through the jobs' connection.
    params = dag.get_task("ingest_events").json["tasks"][0]["spark_python_task"]["parameters"]
    assert wait.folder == params[params.index("--landing-dir") + 1] + "/{{ ds }}"
    assert wait.folder == "/Volumes/ecom/raw/landing/events/{{ ds }}"
    assert wait.patterns == ("*.csv", "*.csv.gz")
    assert wait.databricks_conn_id == LOCAL.databricks_conn_id
    assert wait.mode == "reschedule"
    assert wait.poke_interval == LOCAL.landing_poke_seconds
    assert wait.timeout == LOCAL.landing_timeout.total_seconds()
    assert wait.pool != LOCAL.databricks_pool  # waiting takes no Databricks run slot
    assert wait.completeness == Completeness.parse(LOCAL.landing_completeness)
    # The ingest streams the landing folder, one date at a time (one stream per checkpoint).
    ingest = dag.get_task("ingest_events")
    assert params[params.index("--checkpoint") + 1] == f"{LOCAL.checkpoints_dir}/ingest_events"
    assert params[params.index("--trigger") + 1] == "available-now"
    assert params[params.index("--source") + 1] == LOCAL.landing_source == "files"
    assert ingest.max_active_tis_per_dag == 1


def test_feature_suites_are_validated_in_one_job(dagbag):
    params = (
        dagbag.dags["offline_feature_table"]
        .get_task("validate_features")
        .json["tasks"][0]["spark_python_task"]["parameters"]
    )
    suites = [params[i + 1] for i, p in enumerate(params) if p == "--suite"]
    assert suites == ["silver_events", "user_features"]


def test_drift_dag_checks_the_month_and_branches_to_retraining(dagbag):
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import TriggerRule

    from ecom_airflow.tasks import last_day_of_interval
    from ecom_plugins import DriftBranchSensor

    dag = dagbag.dags["drift_detection"]
    # Data intervals from the first of a month to the first of the next, in UTC.
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 0 1 * *", "UTC")
    wait = dag.get_task("wait_for_offline_feature_table")
    assert wait.execution_date_fn is last_day_of_interval
    check = dag.get_task("check_drift")
    assert isinstance(check, DriftBranchSensor)
    assert check.mode == "reschedule"
    assert check.upstream_task_ids == {"detect_drift"}
    # One threshold: the job's --drift-share, which the summary carries to the sensor.
    from ecom_airflow.config import LOCAL

    params = dag.get_task("detect_drift").json["tasks"][0]["spark_python_task"]["parameters"]
    assert params[params.index("--drift-share") + 1] == str(LOCAL.drift_share)
    assert check.threshold is None
    assert check.downstream_task_ids == {"trigger_retraining", "skip_retraining"}
    trigger = dag.get_task("trigger_retraining")
    assert isinstance(trigger, TriggerDagRunOperator)
    assert trigger.trigger_dag_id == "model_training"
    assert trigger.trigger_run_id == check.retraining_run_id == "drift__{{ ds }}"
    assert trigger.conf["reason"] == "drift"
    assert trigger.skip_when_already_exists
    done = dag.get_task("done")
    assert done.trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    assert done.upstream_task_ids == {"trigger_retraining", "skip_retraining"}


def test_drift_period_templates_render_the_calendar_month(dagbag):
    from airflow.sdk.execution_time import macros

    dag = dagbag.dags["drift_detection"]
    params = dag.get_task("detect_drift").json["tasks"][0]["spark_python_task"]["parameters"]
    env = dag.get_template_env()
    context = {
        "data_interval_start": pendulum.datetime(2019, 11, 1, tz="UTC"),
        "data_interval_end": pendulum.datetime(2019, 12, 1, tz="UTC"),
        "macros": macros,
    }
    start = env.from_string(params[params.index("--start-ds") + 1]).render(**context)
    end = env.from_string(params[params.index("--end-ds") + 1]).render(**context)
    assert (start, end) == ("2019-11-01", "2019-11-30")
    # The sensor waits for the offline features of the month's last day, called the way the
    # sensor calls it (its logical date first, then the context as keywords).
    from airflow.utils.operator_helpers import make_kwargs_callable

    wait = dag.get_task("wait_for_offline_feature_table")
    day = make_kwargs_callable(wait.execution_date_fn)(
        context["data_interval_start"], **{k: v for k, v in context.items() if k != "macros"}
    )
    assert day == pendulum.datetime(2019, 11, 30, tz="UTC")


def test_performance_dag_measures_the_closed_score_date_and_branches_to_retraining(dagbag):
    """Labels of ds - horizon close in the offline run of ds; their scores are serving's of
    ds - horizon. The decision follows the drift pattern with reason=performance."""
    from datetime import timedelta

    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import TriggerRule

    from ecom_plugins import PerformanceBranchSensor

    dag = dagbag.dags["model_performance"]
    assert dag.schedule == dagbag.dags["model_serving"].schedule
    labels = dag.get_task("wait_for_offline_feature_table")
    scores = dag.get_task("wait_for_model_serving")
    assert labels.execution_delta is None and labels.execution_date_fn is None
    assert scores.execution_delta == timedelta(days=LOCAL.label_horizon_days)
    assert set(dag.roots) == {labels, scores}
    monitor = dag.get_task("monitor_performance")
    assert monitor.upstream_task_ids == {labels.task_id, scores.task_id}
    params = monitor.json["tasks"][0]["spark_python_task"]["parameters"]
    flags = dict(zip(params[::2], params[1::2], strict=True))
    assert flags["--horizon-days"] == str(LOCAL.label_horizon_days)
    assert flags["--max-ece"] == str(LOCAL.performance_max_ece)
    assert flags["--max-auc-drop"] == str(LOCAL.performance_max_auc_drop)
    assert flags["--min-rows"] == str(LOCAL.performance_min_rows)
    output = flags["--output"]
    assert output == "/Volumes/ecom/raw/reports/model_performance/{{ ds }}/model_performance"
    assert monitor.downstream_task_ids == {"upload_performance_report", "check_performance"}
    assert dag.get_task("upload_performance_report").report_path == f"{output}.html"
    check = dag.get_task("check_performance")
    assert isinstance(check, PerformanceBranchSensor)
    assert check.summary_path == f"{output}.json" and check.mode == "reschedule"
    assert check.cooldown == LOCAL.performance_cooldown
    assert check.max_ece is None and check.max_auc_drop is None  # the summary's: one source
    assert check.downstream_task_ids == {"trigger_retraining", "skip_retraining"}
    trigger = dag.get_task("trigger_retraining")
    assert isinstance(trigger, TriggerDagRunOperator)
    assert trigger.trigger_dag_id == "model_training"
    assert trigger.trigger_run_id == check.retraining_run_id == "performance__{{ ds }}"
    assert trigger.conf["reason"] == "performance" and trigger.skip_when_already_exists
    done = dag.get_task("done")
    assert done.trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    assert done.upstream_task_ids == {"trigger_retraining", "skip_retraining"}
