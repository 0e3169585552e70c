"""The architecture diagram (docs/architecture.dot and .svg) is the one the current code draws.

``local/docs/architecture.py`` generates the DOT source from the DagBag and from the job scripts
(static analysis, nothing imported on the Spark side); ``make docs`` regenerates it and renders
the SVG the README shows. These tests fail when a DAG, a job script or a table contract changed
without ``make docs``, and check the read/write analysis against the DAGs' runbooks. No Spark,
no Graphviz.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

from ecom_airflow.tasks import job_task
from local.docs import architecture
from tests.support.generated import assert_committed

ROOT = Path(__file__).resolve().parents[3]
REGENERATE = "run `make docs` (needs Graphviz) and commit docs/architecture.dot and .svg"
SVG_TITLE = "{http://www.w3.org/2000/svg}title"


@pytest.fixture(scope="module")
def dags():
    return architecture.load_dags()


@pytest.fixture(scope="module")
def diagram(dags):
    return architecture.build(dags)


@pytest.fixture(scope="module")
def scripts_of(dags) -> dict[str, list[str]]:
    """DAG id -> the job scripts (relative to spark_jobs/) its Databricks tasks run."""
    return {
        dag.dag_id: sorted(
            {
                Path(job_task(task.json)["spark_python_task"]["python_file"]).name
                for task in dag.tasks
                if isinstance(task, DatabricksSubmitRunOperator)
                and "spark_python_task" in job_task(task.json)
            }
        )
        for dag in dags
    }


def test_committed_dot_is_generated_from_the_current_code(diagram):
    assert_committed("docs/architecture.dot", architecture.render_dot(diagram), REGENERATE)


def test_generation_is_deterministic(dags, diagram):
    assert architecture.render_dot(architecture.build(dags)) == architecture.render_dot(diagram)


def test_committed_svg_is_rendered_from_the_current_diagram(dags, diagram):
    """Every node and edge of the diagram is in the SVG (as dot's <title>), and nothing else."""
    path = ROOT / "docs" / "architecture.svg"
    assert path.exists(), f"docs/architecture.svg is missing: {REGENERATE}"
    titles = {t.text for t in ET.parse(path).iter(SVG_TITLE)}
    titles = {t for t in titles if t != "architecture" and not t.startswith("cluster_")}
    for dag in dags:
        assert dag.dag_id in titles, f"DAG {dag.dag_id} is not in the SVG: {REGENERATE}"
    edges = {
        f"{t}->{h}" for (t, h), attrs in diagram.edges.items() if attrs.get("style") != "invis"
    }
    wanted = set(diagram.nodes) | edges
    assert titles == wanted, (
        f"docs/architecture.svg does not match the code: {REGENERATE}; "
        f"missing {sorted(wanted - titles)[:10]}, stale {sorted(titles - wanted)[:10]}"
    )


def test_every_databricks_task_and_its_script_are_drawn(dags, diagram):
    for dag in dags:
        for task in dag.tasks:
            assert f"{dag.dag_id}.{task.task_id}" in diagram.nodes
            if isinstance(task, DatabricksSubmitRunOperator) and "spark_python_task" in job_task(
                task.json
            ):
                script = job_task(task.json)["spark_python_task"]["python_file"]
                assert (f"{dag.dag_id}.{task.task_id}", script) in diagram.edges


def test_every_contract_table_is_written_by_a_scheduled_job(scripts_of):
    """The write analysis finds a writer for every declared table (none silently missed)."""
    written = {
        table
        for scripts in scripts_of.values()
        for script in scripts
        for table in architecture.script_io(script).writes
    }
    tables = architecture.contract_tables()
    assert len(tables) >= 10
    assert set(tables) <= written, sorted(set(tables) - written)


def _runbook_tables(doc_md: str, row: str, known_schemas: set[str]) -> set[str]:
    """``schema.table`` names in backticks on the ``| **<row>** |`` line of a DAG runbook."""
    lines = [line for line in doc_md.splitlines() if line.startswith(f"| **{row}** |")]
    names = {n for line in lines for n in re.findall(r"`([a-z_]+\.[a-z_]+)`", line)}
    return {n for n in names if n.split(".")[0] in known_schemas}


def test_reads_and_writes_agree_with_the_dag_runbooks(dags, scripts_of):
    """Tables a runbook lists as Input are read, and as Output written, by its DAG's jobs.

    The runbooks (``doc_md``) are written by hand, the diagram's reads and writes are derived
    from the job code: two independent sources that must agree.
    """
    tables = set(architecture.contract_tables())
    schemas = {t.split(".")[0] for t in tables}
    checked = 0
    for dag in dags:
        ios = [architecture.script_io(s) for s in scripts_of[dag.dag_id]]
        reads = set().union(*(io.reads for io in ios))
        writes = set().union(*(io.writes for io in ios))
        inputs = _runbook_tables(dag.doc_md, "Input", schemas)
        outputs = _runbook_tables(dag.doc_md, "Output", schemas)
        assert (inputs | outputs) <= tables, f"{dag.dag_id}: runbook names unknown tables"
        assert inputs <= reads, f"{dag.dag_id}: {sorted(inputs - reads)} not read by its jobs"
        assert outputs <= writes, f"{dag.dag_id}: {sorted(outputs - writes)} not written"
        checked += len(inputs | outputs)
    assert checked >= 10


def test_read_write_rules_on_known_scripts():
    """Both modes of one script, MLflow both ways, and a read of a table the job also writes."""
    online = architecture.script_io("publish_online_features.py")
    assert online.writes == {"gold.user_features_online"}
    assert online.reads == {"silver.user_features", "gold.user_features_online"}  # skew check
    training = architecture.script_io("train_models.py")
    assert training.writes == {architecture.MLFLOW}
    # silver.events: where the data begins, so that only mature feature dates are trained on.
    assert training.reads == {
        "silver.events",
        "silver.user_features",
        "silver.user_labels",
        architecture.MLFLOW,
    }
    scoring = architecture.script_io("score_users.py")
    assert scoring.reads == {"gold.user_features_online", architecture.MLFLOW}
    assert scoring.writes == {"gold.propensity_scores"}


def test_make_docs_target_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^docs:", makefile, re.M)
    assert re.search(r"^\.PHONY:.*\bdocs\b", makefile, re.M), "docs is also a folder: .PHONY"
    assert "local.docs.architecture" in makefile
