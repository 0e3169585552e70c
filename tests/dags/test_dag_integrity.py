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
    assert dag.doc_md and "Rerun" in dag.doc_md, "the runbook says how to rerun a date"
    assert dag.schedule is not None
    assert dag.catchup is False, "backfills are explicit, never an accidental catch-up"
    assert dag.start_date == pendulum.datetime(2019, 10, 1, tz="UTC")
    for task in dag.tasks:
        assert task.owner == "ml-platform", task.task_id
        assert task.retries >= 1, task.task_id
        if isinstance(task, DatabricksSubmitRunOperator):
            assert task.execution_timeout is not None, task.task_id


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
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_every_job_script_referenced_by_a_dag_exists(dagbag):
    scripts = [
        task.json["spark_python_task"]["python_file"]
        for dag in dagbag.dags.values()
        for task in dag.tasks
        if isinstance(task, DatabricksSubmitRunOperator)
    ]
    assert scripts
    for script in scripts:
        assert (ROOT / script).is_file(), script
