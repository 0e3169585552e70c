"""The pipeline_monitoring DAG: its tasks, and the collection window its templates render."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.execution_time import macros

from ecom_airflow.config import LOCAL
from ecom_airflow.tasks import RUN_NAME_PATTERN
from ecom_plugins import HtmlReportToBlobOperator, JobRunsToVolumeOperator

ROOT = Path(__file__).resolve().parents[2]
END = pendulum.datetime(2019, 11, 9, tz="UTC")  # the data interval's end of ds 2019-11-08


@pytest.fixture(scope="module")
def dag():
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipeline_monitoring.py"))
    assert bag.import_errors == {}
    return bag.dags["pipeline_monitoring"]


def _flags(task) -> dict[str, str]:
    params = task.json["tasks"][0]["spark_python_task"]["parameters"]
    return dict(zip(params[::2], params[1::2], strict=True))


def _render(dag, template: str, **params) -> str:
    context = {
        "data_interval_end": END,
        "ds": "2019-11-08",
        "macros": macros,
        "params": {"start_time": None, "end_time": None, **params},
    }
    return dag.get_template_env().from_string(template).render(**context)


def test_list_then_collect_then_report_then_upload(dag):
    order = ["list_job_runs", "collect_job_runs", "report_operations", "upload_operations_report"]
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    listed = dag.get_task("list_job_runs")
    assert isinstance(listed, JobRunsToVolumeOperator)
    assert listed.run_name_pattern == RUN_NAME_PATTERN
    assert listed.databricks_conn_id == LOCAL.databricks_conn_id
    collect = _flags(dag.get_task("collect_job_runs"))
    assert collect["--input"] == listed.output_path
    assert (
        listed.output_path
        == "/Volumes/ecom/raw/reports/pipeline_monitoring/{{ ds }}/job_runs.jsonl"
    )
    report = _flags(dag.get_task("report_operations"))
    upload = dag.get_task("upload_operations_report")
    assert isinstance(upload, HtmlReportToBlobOperator)
    assert upload.report_path == report["--output"] + ".html"
    assert report["--trend-ratio"] == str(LOCAL.duration_trend_ratio)
    assert report["--days"] == str(LOCAL.operations_report_days)
    assert dag.max_active_runs == 1  # one writer of the table at a time


def test_the_price_table_reaches_the_job_intact_through_jinja(dag):
    rendered = _render(dag, _flags(dag.get_task("collect_job_runs"))["--prices"])
    prices = json.loads(rendered)
    assert prices == json.loads(LOCAL.prices.as_parameter())
    assert prices["priced_as"]["node_type_id"] == "Standard_D4ds_v5"  # make run: the dev spec


def test_the_window_is_the_lookback_before_the_interval_end_unless_the_run_names_one(dag):
    listed = dag.get_task("list_job_runs")
    report_end = _flags(dag.get_task("report_operations"))["--end-time"]
    assert _render(dag, listed.end_time) == _render(dag, report_end) == END.isoformat()
    start = pendulum.parse(_render(dag, listed.start_time))
    assert END - start == LOCAL.job_runs_lookback
    window = {"start_time": "2026-03-01T10:00:00+00:00", "end_time": "2026-03-01T12:00:00+00:00"}
    assert _render(dag, listed.start_time, **window) == window["start_time"]
    assert _render(dag, listed.end_time, **window) == window["end_time"]
    assert _render(dag, report_end, **window) == window["end_time"]
