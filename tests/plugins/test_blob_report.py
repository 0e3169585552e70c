"""HtmlReportToBlobOperator in real DAG runs: local workspace (Files API) -> Azurite.

Nothing is mocked: the report is read from a Volume of the running local workspace through the
Databricks Files API, uploaded with the Azure provider's WasbHook to a running Azurite, and the
DAG runs go through ``dag.test()`` (metadata database, execution API, XCom, extra links).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
import uuid
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk import DAG
from azure.storage.blob import BlobServiceClient

from ecom_plugins import HtmlReportToBlobOperator
from ecom_plugins.blob_report import ReportLink
from tests.support.airflow import serialize, xcom

pytestmark = pytest.mark.airflow

DAY_1 = pendulum.datetime(2019, 10, 1, tz="UTC")
DAY_2 = pendulum.datetime(2019, 10, 2, tz="UTC")
TASK_ID = "publish_report"


def _report(text: str) -> str:
    return f"<!DOCTYPE html><html><body><h1>{text}</h1><p>caf\u00e9</p></body></html>"


def _dag(dag_id: str, tasks: dict[str, dict]) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=DAY_1,
        default_args={"retries": 0},
    ) as dag:
        for task_id, kwargs in tasks.items():
            HtmlReportToBlobOperator(task_id=task_id, **kwargs)
    serialize(dag)
    return dag


def _xcom(dag_run, key: str, task_id: str = TASK_ID):
    return xcom(dag_run.dag_id, dag_run.run_id, task_id, key)


def _task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


@pytest.fixture(scope="module")
def published(airflow_db, databricks_conn, azurite, put_volume_file):
    """Three runs of one DAG: day 1, day 1 again with a changed report, then day 2."""
    suffix = uuid.uuid4().hex[:8]
    pipeline = f"dq_{suffix}"
    root = f"/Volumes/ecom/raw/reports/test_{suffix}"
    dag = _dag(
        f"blob_report_{suffix}",
        {
            TASK_ID: {
                "report_path": root + "/{{ ds }}/bronze_events.html",
                "pipeline": pipeline,
                "report_name": "bronze_events",
            }
        },
    )
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("reports")

    def blob(name: str) -> tuple[str, str]:
        client = container.get_blob_client(name)
        content_type = client.get_blob_properties().content_settings.content_type
        return client.download_blob().readall().decode(), content_type

    put_volume_file(f"{root}/2019-10-01/bronze_events.html", _report("first"))
    first = dag.test(logical_date=DAY_1)
    first_blob = blob(f"{pipeline}/2019-10-01/bronze_events.html")
    put_volume_file(f"{root}/2019-10-01/bronze_events.html", _report("rerun"))
    rerun = dag.test(logical_date=DAY_1)
    rerun_blob = blob(f"{pipeline}/2019-10-01/bronze_events.html")
    put_volume_file(f"{root}/2019-10-02/bronze_events.html", _report("second day"))
    second = dag.test(logical_date=DAY_2)
    return SimpleNamespace(
        dag=dag,
        pipeline=pipeline,
        runs=(first, rerun, second),
        first_blob=first_blob,
        rerun_blob=rerun_blob,
        blob=blob,
        container=container,
        blob_url=azurite.blob_url,
    )


def test_runs_succeed(published):
    assert [run.state for run in published.runs] == ["success"] * 3


def test_report_lands_at_the_deterministic_blob_as_html(published):
    content, content_type = published.first_blob
    assert content == _report("first")
    assert content_type == "text/html; charset=utf-8"


def test_the_container_is_private(published):
    assert published.container.get_container_properties().public_access is None


def test_a_rerun_of_the_date_overwrites_the_report(published):
    assert published.rerun_blob == (_report("rerun"), "text/html; charset=utf-8")
    assert published.blob(f"{published.pipeline}/2019-10-02/bronze_events.html")[0] == _report(
        "second day"
    )


def test_index_lists_the_pipeline_reports_newest_first(published):
    index, content_type = published.blob(f"{published.pipeline}/index.html")
    assert content_type == "text/html; charset=utf-8"
    assert re.findall(r'href="([^"]+)"', index) == [
        "2019-10-02/bronze_events.html",
        "2019-10-01/bronze_events.html",
    ]


def test_report_url_in_xcom_and_the_sas_link_downloads_the_report(published):
    run = published.runs[-1]
    url = f"{published.blob_url}/reports/{published.pipeline}/2019-10-02/bronze_events.html"
    assert _xcom(run, "report_url") == url
    assert _xcom(run, "return_value") == url
    link = _xcom(run, "report_link")
    assert link.startswith(url + "?") and "sig=" in link and "sp=r" in link
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read().decode() == _report("second day")
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code in (401, 403, 404)


def test_the_report_extra_link_survives_serialization_and_reads_the_xcom(published):
    from airflow import plugins_manager
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.settings import Session

    operator = published.dag.get_task(TASK_ID)
    assert [link.name for link in operator.operator_extra_links] == ["Report"]
    # The plugin in plugins/report_link_plugin.py registers the link without import errors.
    assert any(isinstance(link, ReportLink) for link in plugins_manager.get_operator_extra_links())
    assert not [path for path in plugins_manager.get_import_errors() if "ecom" in path]

    # What the API server does for the UI's button: the serialized task's link, for the TI key.
    run = published.runs[-1]
    link = _xcom(run, "report_link")
    # The worker ran ReportLink.get_link(operator, ti_key=...) when the task finished.
    assert _xcom(run, ReportLink().xcom_key) == link
    task = SerializedDagModel.get_dag(published.dag.dag_id).get_task(TASK_ID)
    assert task.extra_links == ["Report"]
    with Session() as session:
        ti = next(t for t in run.get_task_instances(session=session) if t.task_id == TASK_ID)
        assert task.get_extra_links(ti, "Report") == link


def test_failures_name_what_to_fix(airflow_db, databricks_conn, azurite, put_volume_file, capfd):
    suffix = uuid.uuid4().hex[:8]
    root = f"/Volumes/ecom/raw/reports/test_{suffix}"
    missing = f"{root}/2019-10-01/never_written.html"
    present = f"{root}/2019-10-01/present.html"
    put_volume_file(present, _report("present"))
    bad_key = azurite.connection_string.replace(azurite.key, "d3Jvbmcta2V5" * 8)
    common = {"pipeline": f"dq_{suffix}", "report_name": "r"}
    dag = _dag(
        f"blob_report_fail_{suffix}",
        {
            "missing_report": {"report_path": missing, **common},
            "missing_conn": {
                "report_path": present,
                "wasb_conn_id": f"wasb_none_{suffix}",
                **common,
            },
            "denied": {"report_path": present, "wasb_conn_id": f"wasb_bad_{suffix}", **common},
        },
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv(
            f"AIRFLOW_CONN_WASB_BAD_{suffix.upper()}",
            f'{{"conn_type": "wasb", "extra": {{"connection_string": "{bad_key}"}}}}',
        )
        run = dag.test(logical_date=DAY_1)
    log = "".join(capfd.readouterr())
    assert run.state == "failed"
    assert _task_states(run) == {
        "missing_report": "failed",
        "missing_conn": "failed",
        "denied": "failed",
    }
    assert f"{missing} does not exist on the Databricks workspace" in log
    assert f"Airflow connection 'wasb_none_{suffix}' (Azure Blob Storage) is not defined" in log
    assert "Access denied to container 'reports' of storage account 'devstoreaccount1'" in log
    assert f"connection 'wasb_bad_{suffix}'" in log
