"""DataQualityGateOperator in real DAG runs, reading summaries from the local workspace."""

from __future__ import annotations

import json
import uuid

import pendulum
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from ecom_plugins import DataQualityGateOperator
from tests.support.airflow import serialize, xcom

pytestmark = pytest.mark.airflow

LOGICAL_DATE = pendulum.datetime(2019, 10, 1, tz="UTC")
COUNTS = {"evaluated": 12, "passed": 10, "blocking_failed": 0, "warning_failed": 1, "skipped": 1}
WARNING = {
    "suite": "bronze_events",
    "expectation": "expect_column_values_to_be_between",
    "column": "price",
    "observed": 0.012,
    "expected": "<= 0.01 out of range",
}


def _summary(success: bool, blocking: list[dict]) -> dict:
    counts = dict(COUNTS, blocking_failed=len(blocking), passed=COUNTS["passed"] - len(blocking))
    return {
        "ds": "2019-10-01",
        "suites": ["bronze_events"],
        "success": success,
        "blocking_failures": blocking,
        "warnings": [WARNING],
        "counts": counts,
        "report": "/Volumes/ecom/raw/reports/data_quality_validation/2019-10-01/bronze_events.html",
    }


def _run(summary: dict | str | None, put_volume_file, retries: int = 2):
    """One DAG run of ``validate_bronze >> quality_gate`` over ``summary``."""
    suffix = uuid.uuid4().hex[:8]
    path = f"/Volumes/ecom/raw/reports/test_{suffix}/2019-10-01/bronze_events.json"
    if summary is not None:
        put_volume_file(path, summary if isinstance(summary, str) else json.dumps(summary))
    with DAG(
        dag_id=f"quality_gate_{suffix}",
        schedule=None,
        start_date=LOGICAL_DATE,
        default_args={"retries": retries},
    ) as dag:
        gate = DataQualityGateOperator(
            task_id="quality_gate",
            summary_path=f"/Volumes/ecom/raw/reports/test_{suffix}/{{{{ ds }}}}/bronze_events.json",
        )
        EmptyOperator(task_id="validate_bronze") >> gate
    serialize(dag)
    run = dag.test(logical_date=LOGICAL_DATE)
    ti = next(t for t in run.get_task_instances() if t.task_id == "quality_gate")
    return run, ti, path


def _xcom(ti, key: str):
    return xcom(ti.dag_id, ti.run_id, ti.task_id, key)


def test_a_passing_summary_succeeds_and_pushes_the_counts(
    airflow_db, databricks_conn, put_volume_file, capfd
):
    run, ti, _ = _run(_summary(success=True, blocking=[]), put_volume_file)
    log = "".join(capfd.readouterr())
    assert run.state == "success"
    assert ti.state == "success"
    assert _xcom(ti, "counts") == COUNTS
    assert _xcom(ti, "return_value") == COUNTS
    assert "evaluated=12, passed=10, blocking_failed=0, warning_failed=1, skipped=1" in log
    assert "expect_column_values_to_be_between on column 'price' (observed 0.012" in log


def test_a_blocking_failure_fails_without_retry_naming_each_failure(
    airflow_db, databricks_conn, put_volume_file, capfd
):
    blocking = [
        {
            "suite": "bronze_events",
            "expectation": "expect_column_values_to_not_be_null",
            "column": "event_time",
            "observed": {"unexpected_count": 42, "unexpected_percent": 4.2},
            "expected": "no nulls",
        },
        {
            "suite": "bronze_events",
            "expectation": "expect_table_row_count_to_be_between",
            "column": None,
            "observed": 3,
            "expected": {"min_value": 1000},
        },
    ]
    run, ti, _ = _run(_summary(success=False, blocking=blocking), put_volume_file)
    log = "".join(capfd.readouterr())
    assert run.state == "failed"
    assert ti.state == "failed"
    assert ti.try_number == 1  # AirflowFailException: not retried despite retries=2
    assert "Data quality gate failed for 2019-10-01: 2 blocking expectation(s) failed" in log
    assert (
        "expect_column_values_to_not_be_null on column 'event_time' "
        "(observed {'unexpected_count': 42, 'unexpected_percent': 4.2}, expected 'no nulls')"
    ) in log
    assert "expect_table_row_count_to_be_between (observed 3, expected {'min_value': 1000})" in log
    assert _xcom(ti, "counts")["blocking_failed"] == 2


def test_a_missing_summary_names_the_path_and_the_task_that_writes_it(
    airflow_db, databricks_conn, put_volume_file, capfd
):
    run, ti, path = _run(None, put_volume_file, retries=0)
    log = "".join(capfd.readouterr())
    assert run.state == "failed"
    assert ti.state == "failed"
    assert f"{path} does not exist on the Databricks workspace" in log
    assert "should have been written by upstream task(s) ['validate_bronze']" in log


def test_an_invalid_summary_is_a_clear_error(airflow_db, databricks_conn, put_volume_file, capfd):
    run, ti, path = _run('{"success": "yes"', put_volume_file, retries=0)
    log = "".join(capfd.readouterr())
    assert (run.state, ti.state) == ("failed", "failed")
    assert f"{path} is not valid JSON" in log


def test_workspace_errors_name_the_connection(workspace, databricks_conn, monkeypatch):
    """What the gate (and the other operators) report for a missing or refused connection."""
    from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

    from ecom_plugins import workspace_files

    path = "/Volumes/ecom/raw/reports/any/summary.json"
    with pytest.raises(
        AirflowNotFoundException, match=r"'databricks_nowhere' \(Databricks\) is not defined"
    ):
        workspace_files.read_json(path, databricks_conn_id="databricks_nowhere")
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATABRICKS_WRONG_TOKEN",
        json.dumps(
            {
                "conn_type": "databricks",
                "host": workspace.host,
                "port": workspace.port,
                "schema": "http",
                "password": "not-the-token",
            }
        ),
    )
    with pytest.raises(AirflowException, match=f"Permission denied reading {path}"):
        workspace_files.read_json(path, databricks_conn_id="databricks_wrong_token")
