"""``python -m local.docs.architecture``: the architecture diagram, generated from the code.

Writes ``docs/architecture.dot`` (Graphviz); ``make docs`` runs this and renders
``docs/architecture.svg`` with Graphviz's ``dot``. Nothing in the diagram is typed by hand:

* **Airflow** (``dags/``, loaded as a ``DagBag`` in the ``local`` environment): every DAG with
  its schedule and tasks and the dependencies between them; which job script each
  ``DatabricksSubmitRunOperator`` runs (its one task's ``spark_python_task.python_file``); the
  cross-DAG edges (``ExternalTaskSensor.external_dag_id`` -> the sensor,
  ``TriggerDagRunOperator`` -> ``trigger_dag_id``, ``DriftBranchSensor.training_dag_id``);
  the Volumes the tasks name in their parameters (``--landing-dir``, ``--output``,
  ``report_path``, ``summary_path``) and the Blob container of the report uploads.
* **Tables** (``spark_jobs/``, read with :mod:`ast`, nothing imported): the
  ``Contract(...)`` declarations of ``spark_jobs/clickstream/`` and the tables and MLflow
  each job script reads and writes (:mod:`local.docs.job_io` says how it finds them).

The output is sorted, so a change of the code shows up as a diff of the DOT file, and
``tests/local/docs/test_architecture.py`` fails when the committed file is stale.

    python -m local.docs.architecture [--output docs/architecture.dot] [--check]
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from deploy.environment import environment, importable
from local.docs import generated
from local.docs.job_io import MLFLOW, contract_tables, parsed_package, script_io

ROOT = Path(__file__).resolve().parents[2]
DOT_PATH = ROOT / "docs" / "architecture.dot"
SVG_PATH = ROOT / "docs" / "architecture.svg"
BLOB = "azure_blob"
LANDING = "volume:landing"
REPORTS = "volume:reports"


# -- dags/: the DagBag ---------------------------------------------------------------------------


def load_dags() -> list:
    """The DAGs of ``dags/`` as the scheduler parses them, in the ``local`` environment."""
    importable()
    with contextlib.ExitStack() as stack:
        if "AIRFLOW_HOME" not in os.environ:  # never create ~/airflow just to parse the DAGs
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="architecture-"))
            stack.enter_context(environment(AIRFLOW_HOME=home))
        stack.enter_context(environment(ECOM_ENV="local", AIRFLOW__CORE__LOAD_EXAMPLES="False"))
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return sorted(bag.dags.values(), key=lambda d: d.dag_id)


def _schedule(dag) -> str:
    timetable = dag.timetable
    expression = getattr(timetable, "expression", None)
    if expression is None:
        return str(dag.schedule)
    try:
        from airflow.utils.dates import cron_presets
    except ImportError:
        cron_presets = {}
    preset = {v: k for k, v in cron_presets.items()}.get(expression)
    zone = getattr(timetable, "timezone", "")
    text = f"{expression} {zone}".strip()
    return f"{preset} ({text})" if preset else text


# -- the diagram ---------------------------------------------------------------------------------


@dataclass
class Diagram:
    """Nodes (id -> attributes), their clusters, and edges, all sortable."""

    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    clusters: dict[str, list[str]] = field(default_factory=dict)  # cluster path -> node ids
    cluster_labels: dict[str, str] = field(default_factory=dict)
    edges: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def node(self, node_id: str, cluster: str | None = None, **attrs: str) -> None:
        self.nodes.setdefault(node_id, {}).update(attrs)
        if cluster is not None and node_id not in self.clusters.setdefault(cluster, []):
            self.clusters[cluster].append(node_id)

    def edge(self, tail: str, head: str, **attrs: str) -> None:
        self.edges.setdefault((tail, head), {}).update(attrs)

    def data_edge(self, script: str, resource: str, *, read: bool, write: bool) -> None:
        """One edge per script and resource: read (resource -> script), write, or both."""
        if read and write:
            self.edge(script, resource, dir="both", **STYLE["data"])
        elif write:
            self.edge(script, resource, **STYLE["data"])
        elif read:
            self.edge(resource, script, **STYLE["data"])


STYLE: dict[str, dict[str, str]] = {
    "dag": {"shape": "tab", "style": "filled,bold", "fillcolor": "#017cee", "fontcolor": "white"},
    "databricks": {"fillcolor": "#ffe0d2"},
    "plugin": {"fillcolor": "#dcebfa"},
    "sensor": {"fillcolor": "#eeeeee", "style": "rounded,filled,dashed"},
    "trigger": {"fillcolor": "#e2f3d6"},
    "empty": {"fillcolor": "white", "fontcolor": "#666666"},
    "script": {"shape": "note", "style": "filled", "fillcolor": "#fff6d5"},
    "table": {"shape": "cylinder", "style": "filled", "fillcolor": "#e8f5e9"},
    "external": {"shape": "box3d", "style": "filled", "fillcolor": "#f3e5f5"},
    "runs": {"style": "dashed", "color": "#e8590c", "arrowhead": "vee"},
    "data": {"color": "#2e7d32"},
    "external_edge": {"color": "#7b1fa2"},
    # Cross-DAG edges do not rank the layout: each DAG's box starts at the top.
    "cross_dag": {
        "color": "#017cee",
        "penwidth": "2",
        "fontcolor": "#017cee",
        "constraint": "false",
    },
    "cross_dag_check": {
        "color": "#017cee",
        "fontcolor": "#017cee",
        "style": "dotted",
        "constraint": "false",
    },
}
TABLE_COLOURS = {
    "bronze": "#f1dcc3",
    "silver": "#e6e9ee",
    "gold": "#fff0b3",
    "monitoring": "#e3f2fd",
}


def _task_kind(task) -> str:
    cls = type(task)
    module = cls.__module__
    if cls.__name__ == "DatabricksSubmitRunOperator":
        return "databricks"
    if cls.__name__ == "ExternalTaskSensor":
        return "sensor"
    if cls.__name__ == "TriggerDagRunOperator":
        return "trigger"
    if cls.__name__ == "EmptyOperator":
        return "empty"
    if module.startswith("ecom_plugins"):
        return "plugin"
    raise ValueError(f"{task.dag_id}.{task.task_id}: no diagram style for {module}.{cls.__name__}")


def _volume(value: object, env) -> str | None:
    """Which Volume a task parameter names, if any (unknown Volume paths fail loudly)."""
    if not isinstance(value, str) or not value.startswith(env.volume_root + "/"):
        return None
    if value.startswith(env.reports_dir + "/"):
        return REPORTS
    if value.startswith(f"{env.volume_root}/landing/"):
        return LANDING
    if value.startswith(env.checkpoints_dir + "/"):
        return None  # a stream's own state (its checkpoint), not data the diagram follows
    raise ValueError(
        f"{value!r} is in no Volume the diagram knows; add it to local/docs/architecture.py"
    )


def _pipeline_order(dags: list) -> list[str]:
    """DAG ids, each after the DAGs it waits for (``ExternalTaskSensor``); ties by name."""
    upstream = {
        dag.dag_id: {
            t.external_dag_id for t in dag.tasks if type(t).__name__ == "ExternalTaskSensor"
        }
        for dag in dags
    }
    order: list[str] = []
    while len(order) < len(upstream):
        ready = sorted(d for d, ups in upstream.items() if d not in order and ups <= set(order))
        if not ready:
            raise ValueError(f"cross-DAG sensors form a cycle: {upstream}")
        order.append(ready[0])
    return order


@dataclass
class _Lineage:
    """What the DAGs' tasks reach outside Airflow, gathered while their boxes are drawn."""

    scripts: set[str] = field(default_factory=set)
    external_io: set[tuple[str, str, str]] = field(default_factory=set)  # (node, resource, mode)


def build(dags: list) -> Diagram:
    """The diagram of ``dags`` and the job scripts their Databricks tasks run.

    Layout (top to bottom is the flow of the data): the DAGs on the left, one box each; on
    the right the lineage: landing Volume -> scripts -> tables -> scripts -> ... Each
    Databricks task sits level with the script it runs.
    """
    from ecom_airflow.config import LOCAL as env

    diagram = Diagram()
    diagram.cluster_labels["airflow"] = "Airflow 3  (dags/, plugins/ecom_plugins/)"
    diagram.cluster_labels["workspace"] = (
        "Databricks workspace: job scripts (spark_jobs/), Delta tables "
        "(contracts in spark_jobs/clickstream/), Volumes, MLflow"
    )
    lineage = _Lineage()
    dag_ids = {dag.dag_id for dag in dags}
    for position, dag_id in enumerate(_pipeline_order(dags)):
        dag = next(d for d in dags if d.dag_id == dag_id)
        _draw_dag(diagram, dag, position, dag_ids, lineage, env)
    _draw_workspace(diagram, lineage.scripts, env)
    for node_id, resource, mode in sorted(lineage.external_io):
        if mode == "read":
            diagram.edge(resource, node_id, **STYLE["external_edge"])
        else:
            diagram.edge(node_id, resource, **STYLE["external_edge"])
    return diagram


def _draw_dag(
    diagram: Diagram, dag, position: int, dag_ids: set[str], lineage: _Lineage, env
) -> None:
    """One DAG's box: its node, its tasks and their edges, and what the tasks reach."""
    # Cluster names sort in pipeline order, and dot keeps that order for the DAG boxes.
    cluster = f"airflow/{position:02d}_{dag.dag_id}"
    diagram.cluster_labels[cluster] = ""
    diagram.node(dag.dag_id, cluster, label=f"{dag.dag_id}\\n{_schedule(dag)}", **STYLE["dag"])
    for task in sorted(dag.tasks, key=lambda t: t.task_id):
        kind = _task_kind(task)
        node_id = f"{dag.dag_id}.{task.task_id}"
        label = task.task_id
        if kind in ("plugin", "sensor", "trigger"):
            label += f"\\n({type(task).__name__})"
        diagram.node(node_id, cluster, label=label, **STYLE[kind])
        if not task.upstream_task_ids:
            diagram.edge(dag.dag_id, node_id, style="invis")  # keeps the DAG node first
        for downstream in sorted(task.downstream_task_ids):
            diagram.edge(node_id, f"{dag.dag_id}.{downstream}")
        if kind == "databricks":
            _draw_databricks_task(diagram, task, node_id, lineage, env)
        elif kind == "sensor":
            fn, delta = task.execution_date_fn, task.execution_delta
            when = fn.__name__ if fn else "same logical date"
            if delta:
                when = f"logical date - {delta.days} days"
            diagram.edge(
                task.external_dag_id, node_id, label=f"success\\n({when})", **STYLE["cross_dag"]
            )
        elif kind == "trigger":
            conf = ", ".join(
                f"{k}={v}" if "{{" not in str(v) else k for k, v in sorted(task.conf.items())
            )
            diagram.edge(
                node_id,
                task.trigger_dag_id,
                label=f"triggers\\nconf: {conf}",
                **STYLE["cross_dag"],
            )
        else:
            _draw_airflow_task(diagram, task, node_id, dag_ids, lineage, env)


def _draw_databricks_task(diagram: Diagram, task, node_id: str, lineage: _Lineage, env) -> None:
    """The edge to the script a Databricks task runs, and the Volumes its parameters name."""
    # No spark_python_task: sync_online_store (a pipeline_task) runs no script.
    [job_task] = task.json["tasks"]
    spark_task = job_task.get("spark_python_task")
    if not spark_task:
        return
    script = spark_task["python_file"]
    lineage.scripts.add(script)
    diagram.edge(node_id, script, **STYLE["runs"])
    parameters = spark_task.get("parameters", [])
    for flag, value in zip([None, *parameters], parameters, strict=False):
        volume = _volume(value, env)
        if volume:  # jobs read the landing Volume and their --input, and write the reports
            reads = volume != REPORTS or flag == "--input"
            lineage.external_io.add((script, volume, "read" if reads else "write"))


def _draw_airflow_task(
    diagram: Diagram, task, node_id: str, dag_ids: set[str], lineage: _Lineage, env
) -> None:
    """A task that runs in Airflow (an ``ecom_plugins`` operator or sensor): the Volumes it
    reads, the Blob container it uploads to, and the training DAG it checks."""
    for attr in ("report_path", "summary_path"):
        volume = _volume(getattr(task, attr, None), env)
        if volume:
            lineage.external_io.add((node_id, volume, "read"))
    volume = _volume(getattr(task, "output_path", None), env)  # e.g. the job runs listed
    if volume:
        lineage.external_io.add((node_id, volume, "write"))
    if getattr(task, "container", None) and getattr(task, "wasb_conn_id", None):
        lineage.external_io.add((node_id, BLOB, "write"))
    training = getattr(task, "training_dag_id", None)
    if training in dag_ids:
        diagram.edge(training, node_id, label="no run in flight", **STYLE["cross_dag_check"])


def _draw_workspace(diagram: Diagram, scripts: set[str], env) -> None:
    """The tables, the scripts with what they read and write, the Volumes, MLflow and Blob."""
    package = parsed_package()
    for table in contract_tables():
        schema = table.split(".")[0]
        colour = TABLE_COLOURS.get(schema, STYLE["table"]["fillcolor"])
        diagram.node(table, "workspace", label=table, **{**STYLE["table"], "fillcolor": colour})
    for script in sorted(scripts):
        io = script_io(Path(script).relative_to("spark_jobs").as_posix(), package)
        diagram.node(script, "workspace", label=Path(script).name, **STYLE["script"])
        for resource in sorted(io.reads | io.writes):
            diagram.data_edge(
                script, resource, read=resource in io.reads, write=resource in io.writes
            )
    externals = {
        LANDING: f"landing Volume\\n{env.landing_dir.replace(env.volume_root, '<volume_root>')}",
        REPORTS: f"reports Volume\\n{env.reports_dir.replace(env.volume_root, '<volume_root>')}",
        MLFLOW: "MLflow\\ntracking + model registry\\n(aliases champion / challenger)",
    }
    for node_id, label in externals.items():
        diagram.node(node_id, "workspace", label=label, **STYLE["external"])
    diagram.node(
        BLOB,
        None,
        label=f"Azure Blob Storage\\ncontainer '{env.reports_container}'",
        **STYLE["external"],
    )


# -- DOT -----------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def _attrs(attrs: dict[str, str]) -> str:
    if not attrs:
        return ""
    # Labels carry DOT escapes (\n) on purpose: quote, but do not escape backslashes.
    return " [" + ", ".join(f"{k}={_quote(v)}" for k, v in sorted(attrs.items())) + "]"


def render_dot(diagram: Diagram) -> str:
    lines = [
        "// Generated by `python -m local.docs.architecture` (make docs) from dags/, spark_jobs/.",
        "// Do not edit: change the code, then `make docs` regenerates this file and the SVG.",
        "digraph architecture {",
        '  graph [rankdir="TB", fontname="Helvetica", fontsize="12", nodesep="0.18", '
        'ranksep="0.5", newrank="true", labelloc="t", '
        'label="ecom-ml-platform: Airflow DAGs, Databricks jobs, Delta tables and services"];',
        '  node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize="10"];',
        '  edge [fontname="Helvetica", fontsize="9", color="#555555"];',
    ]
    clustered: set[str] = set()

    def emit(path: str, depth: int) -> None:
        indent = "  " * depth
        name = "cluster_" + path.replace("/", "__")
        lines.append(f"{indent}subgraph {_quote(name)} {{")
        label = diagram.cluster_labels.get(path, path)
        style = "rounded" if "/" in path else "rounded,dashed"
        lines.append(f"{indent}  graph [label={_quote(label)}, style={_quote(style)}];")
        for child in sorted(c for c in all_clusters if c.rsplit("/", 1)[0] == path and c != path):
            emit(child, depth + 1)
        for node_id in sorted(diagram.clusters.get(path, [])):
            lines.append(f"{indent}  {_quote(node_id)}{_attrs(diagram.nodes[node_id])};")
            clustered.add(node_id)
        lines.append(f"{indent}}}")

    all_clusters = set(diagram.clusters) | set(diagram.cluster_labels)
    for top in sorted(c for c in all_clusters if "/" not in c):
        emit(top, 1)
    for node_id in sorted(set(diagram.nodes) - clustered):
        lines.append(f"  {_quote(node_id)}{_attrs(diagram.nodes[node_id])};")
    for (tail, head), attrs in sorted(diagram.edges.items()):
        lines.append(f"  {_quote(tail)} -> {_quote(head)}{_attrs(attrs)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate() -> str:
    """The DOT source of the current code."""
    return render_dot(build(load_dags()))


def main(argv: list[str] | None = None) -> int:
    return generated.main(
        argv,
        prog="python -m local.docs.architecture",
        description=__doc__,
        default=DOT_PATH,
        generate=generate,
    )


if __name__ == "__main__":
    sys.exit(main())
