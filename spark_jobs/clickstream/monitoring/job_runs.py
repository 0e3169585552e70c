"""``monitoring.job_runs``: one row per Databricks run the DAGs started, with its cost.

**Input.** What ``runs/get`` (or ``runs/list`` with ``expand_tasks``) answers for each run, one
JSON object a line: the Airflow side (``ecom_plugins.job_runs.JobRunsToVolumeOperator``) lists
the one-time runs of a window through the Jobs API and writes them to a Volume file.

**Which runs.** A run is the project's when its name is the one ``databricks_job`` sets,
``<dag_id>.<task_id> [<ds>]`` (:data:`RUN_NAME_PATTERN`); that name gives the row its DAG, task
and logical date. Any other run (ad-hoc runs, other teams' jobs) is not ours and is skipped.
An Airflow retry or a cleared task is a new run of the same name: several rows for one
(DAG, task, date) are its retries.

**Durations** (seconds). Databricks reports a run's phases in milliseconds: ``queue_duration``
and ``run_duration`` on the run; ``setup_duration``, ``execution_duration`` and
``cleanup_duration`` on each task of a multi-task run (what ``runs/submit`` with ``tasks``
creates; the run's own are then 0) or on the run of a single-task one. A phase is the tasks'
sum when they report it, else the run's (:func:`phases`).

**Cost** (:func:`pricing`): a job cluster is billed for every node, driver and workers, while
it lives (setup, execution, cleanup; not the queue): the node type's DBUs per hour at the jobs
$/DBU plus the VM's hourly price; serverless is billed DBUs only, at an assumed rate per hour of
setup and execution. The price table comes from the environment's config (``--prices``); its
``priced_as`` prices every run as if on that cluster spec (locally: the dev cluster). An
autoscaling cluster is priced at its minimum size (``estimated_cost_usd``) and its maximum
(``estimated_cost_max_usd``): the Jobs API does not say how far it scaled. The hourly figures
are kept on the row, so a cost at another volume is the same rate over other hours.

**Writes** are a MERGE on ``run_id``: collecting a window again (a rerun, an overlapping
lookback) updates the rows, never duplicates them, and a run seen in flight gets its final
state from a later collection.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from clickstream.core.contracts import JOB_RUNS, check_frame, ensure_table, retry_on_conflict
from clickstream.core.jobs import JobError
from clickstream.core.volumes import local_path

# The run name databricks_job sets (include/ecom_airflow/tasks.py keeps the same pattern; a
# test holds the two equal). DAG ids have no dot; a task id may (task groups).
RUN_NAME_PATTERN = (
    r"(?P<dag_id>[^.\s\[\]]+)\.(?P<task_id>[^\s\[\]]+)"
    r" \[(?P<ds>\d{4}-\d{2}-\d{2})\]"
)
_RUN_NAME = re.compile(RUN_NAME_PATTERN)
PHASES = ("setup_duration", "execution_duration", "cleanup_duration")
FAILED_STATES = frozenset({"FAILED", "TIMEDOUT", "CANCELED", "MAXIMUM_CONCURRENT_RUNS_REACHED"})


def run_name_parts(name: str | None) -> tuple[str, str, str] | None:
    """(dag_id, task_id, ds) of a run the DAGs started; None for any other name (or a date
    that is not one)."""
    found = _RUN_NAME.fullmatch(name or "")
    if not found:
        return None
    try:
        date.fromisoformat(found["ds"])
    except ValueError:
        return None
    return found["dag_id"], found["task_id"], found["ds"]


# -- durations ---------------------------------------------------------------------------------


def _ms(value: Any) -> int:
    return int(value or 0)


def phases(run: dict) -> dict[str, float]:
    """Queue, setup, execution, cleanup and total seconds of a ``runs/get`` answer."""
    tasks = run.get("tasks") or []
    seconds = {}
    for key in PHASES:
        of_tasks = sum(_ms(task.get(key)) for task in tasks)
        seconds[key] = (of_tasks or _ms(run.get(key))) / 1000
    if run.get("run_duration") is not None:
        total = _ms(run["run_duration"]) / 1000
    else:  # an API without run_duration: the task's life
        total = sum(seconds.values())
    return {
        "queue_seconds": _ms(run.get("queue_duration")) / 1000,
        "setup_seconds": seconds["setup_duration"],
        "execution_seconds": seconds["execution_duration"],
        "cleanup_seconds": seconds["cleanup_duration"],
        "total_seconds": total,
    }


def state_of(run: dict) -> tuple[str, str | None, str | None]:
    """(life cycle state, result state or None in flight, message) of a run."""
    state = run.get("state") or {}
    life_cycle = state.get("life_cycle_state")
    if life_cycle is None:  # only the newer `status` field
        status = run.get("status") or {}
        life_cycle = status.get("state") or "UNKNOWN"
        details = status.get("termination_details") or {}
        return life_cycle, details.get("code"), details.get("message")
    return life_cycle, state.get("result_state"), state.get("state_message") or None


# -- compute and price -------------------------------------------------------------------------


@dataclass(frozen=True)
class Compute:
    """What a run ran on: ``job_cluster``, ``serverless``, ``existing_cluster`` or ``unknown``,
    with the node types and the number of workers (fixed, or autoscale min..max) when known."""

    kind: str
    node_type_id: str | None = None
    driver_node_type_id: str | None = None
    workers: int | None = None
    max_workers: int | None = None


def cluster_compute(spec: dict, kind: str = "job_cluster") -> Compute:
    """The :class:`Compute` of a ``new_cluster`` spec."""
    autoscale = spec.get("autoscale") or {}
    if autoscale:
        workers = int(autoscale.get("min_workers") or 0)
        most = int(autoscale.get("max_workers") or workers)
    else:
        workers = most = int(spec.get("num_workers") or 0)
    node = spec.get("node_type_id")
    return Compute(kind, node, spec.get("driver_node_type_id") or node, workers, most)


def compute_of(run: dict) -> Compute:
    """The compute of a run's first task: its ``new_cluster``, a job cluster of the run
    (``job_cluster_key``), an existing cluster, or serverless (an ``environment_key``, or no
    cluster at all, which Databricks runs on serverless); else the run's ``cluster_spec``."""
    clusters = {
        c.get("job_cluster_key"): c.get("new_cluster") or {} for c in run.get("job_clusters") or []
    }
    for task in (run.get("tasks") or [])[:1]:
        if task.get("new_cluster"):
            return cluster_compute(task["new_cluster"])
        if task.get("job_cluster_key") in clusters:
            return cluster_compute(clusters[task["job_cluster_key"]])
        if task.get("existing_cluster_id"):
            return Compute("existing_cluster")
        return Compute("serverless")
    spec = run.get("cluster_spec") or {}
    if spec.get("new_cluster"):
        return cluster_compute(spec["new_cluster"])
    if spec.get("existing_cluster_id"):
        return Compute("existing_cluster")
    if spec.get("environment_key"):
        return Compute("serverless")
    return Compute("unknown")


@dataclass(frozen=True)
class Price:
    """The hourly price of a run's compute and what it is based on."""

    dbu_per_hour: float | None
    usd_per_hour: float | None  # at the minimum (or fixed) size
    usd_per_hour_max: float | None  # at the autoscale maximum
    basis: str


def _node(prices: dict, node_type: str | None) -> dict | None:
    return (prices.get("nodes") or {}).get(node_type) if node_type else None


def pricing(compute: Compute, prices: dict) -> Price:
    """The hourly price of ``compute`` under the price table ``prices`` (see the module
    docstring); unknown figures give None, with the reason in ``basis``."""
    if compute.kind == "serverless":
        dbu = float(prices["serverless_dbu_per_hour"])
        usd = dbu * float(prices["serverless_usd_per_dbu"])
        return Price(dbu, usd, usd, f"serverless at an assumed {dbu:g} DBU/h")
    if compute.kind == "existing_cluster":
        return Price(None, None, None, "an existing cluster: billed to the cluster, not the run")
    if compute.kind != "job_cluster":
        return Price(None, None, None, "compute unknown")
    priced = compute
    if prices.get("priced_as"):
        priced = cluster_compute(prices["priced_as"])
    worker, driver = _node(prices, priced.node_type_id), _node(prices, priced.driver_node_type_id)
    if worker is None or driver is None:
        missing = priced.node_type_id if worker is None else priced.driver_node_type_id
        return Price(None, None, None, f"no price for node type {missing or '(none: a pool?)'}")
    rate = float(prices["jobs_usd_per_dbu"])

    def hourly(workers: int) -> tuple[float, float]:
        dbu = driver["dbu_per_hour"] + workers * worker["dbu_per_hour"]
        vm = driver["vm_usd_per_hour"] + workers * worker["vm_usd_per_hour"]
        return dbu, dbu * rate + vm

    dbu, usd = hourly(priced.workers or 0)
    usd_max = hourly(priced.max_workers or 0)[1]
    size = (
        f"{priced.workers}"
        if priced.workers == priced.max_workers
        else f"{priced.workers}..{priced.max_workers}"
    )
    basis = f"{priced.node_type_id}, driver + {size} workers"
    if prices.get("priced_as"):
        basis = f"as if on {basis}"
    return Price(dbu, usd, usd_max, basis)


def billable_seconds(compute: Compute, seconds: dict[str, float]) -> float:
    """The seconds a run's compute is billed for: a cluster's life (setup, execution, cleanup),
    serverless' setup and execution; never the queue."""
    billed = seconds["setup_seconds"] + seconds["execution_seconds"]
    if compute.kind != "serverless":
        billed += seconds["cleanup_seconds"]
    return billed


# -- rows --------------------------------------------------------------------------------------


def _timestamp(ms: Any) -> datetime | None:
    # Aware: PySpark reads a naive datetime as the Python process's local time.
    return datetime.fromtimestamp(_ms(ms) / 1000, tz=UTC) if ms else None


def run_row(run: dict, prices: dict, *, collection_date: str, airflow_run_id: str) -> dict | None:
    """The ``monitoring.job_runs`` row of one ``runs/get`` answer; None for a run that is not
    the DAGs' (its name is not ``<dag_id>.<task_id> [<ds>]``)."""
    parts = run_name_parts(run.get("run_name"))
    if parts is None or run.get("run_id") is None:
        return None
    dag_id, task_id, ds = parts
    seconds = phases(run)
    compute = compute_of(run)
    price = pricing(compute, prices)
    billed = billable_seconds(compute, seconds)
    life_cycle, result, message = state_of(run)
    tasks = run.get("tasks") or []
    return {
        "run_id": int(run["run_id"]),
        "dag_id": dag_id,
        "task_id": task_id,
        "logical_date": date.fromisoformat(ds),
        "run_name": run["run_name"],
        "task_run_id": int(tasks[0]["run_id"]) if tasks and tasks[0].get("run_id") else None,
        "life_cycle_state": life_cycle,
        "result_state": result,
        "state_message": message,
        "start_time": _timestamp(run.get("start_time")),
        "end_time": _timestamp(run.get("end_time")),
        **seconds,
        "compute_kind": compute.kind,
        "node_type_id": compute.node_type_id,
        "driver_node_type_id": compute.driver_node_type_id,
        "workers": compute.workers,
        "max_workers": compute.max_workers,
        "price_basis": price.basis,
        "billable_seconds": billed,
        "dbu_per_hour": price.dbu_per_hour,
        "usd_per_hour": price.usd_per_hour,
        "usd_per_hour_max": price.usd_per_hour_max,
        "estimated_cost_usd": _cost(price.usd_per_hour, billed),
        "estimated_cost_max_usd": _cost(price.usd_per_hour_max, billed),
        "price_table": prices.get("name"),
        "run_page_url": run.get("run_page_url"),
        "collection_date": date.fromisoformat(collection_date),
        "airflow_run_id": airflow_run_id,
    }


def _cost(usd_per_hour: float | None, seconds: float) -> float | None:
    return None if usd_per_hour is None else usd_per_hour * seconds / 3600


def read_runs(path: str) -> list[dict]:
    """The runs of the JSON-lines file ``path`` (a Volume path); a missing file or a line
    that is not a JSON object fails naming it."""
    file = Path(local_path(path))
    if not file.is_file():
        raise JobError(
            f"{path} does not exist: the runs are written there by the DAG's list_job_runs "
            "task (run it first for this date)"
        )
    runs = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except ValueError as error:
            raise JobError(f"{path}, line {number}: not JSON ({error})") from None
        if not isinstance(run, dict):
            raise JobError(f"{path}, line {number}: not a JSON object")
        runs.append(run)
    return runs


def parse_prices(text: str) -> dict:
    """The ``--prices`` JSON (``PriceTable.as_parameter`` of the environment's config)."""
    try:
        prices = json.loads(text)
    except ValueError as error:
        raise ValueError(f"--prices is not JSON: {error}") from None
    needed = ("name", "jobs_usd_per_dbu", "serverless_usd_per_dbu", "serverless_dbu_per_hour")
    missing = [k for k in (*needed, "nodes") if k not in prices]
    if missing:
        raise ValueError(f"--prices lacks {', '.join(missing)}")
    for node_type, node in prices["nodes"].items():
        if not {"dbu_per_hour", "vm_usd_per_hour"} <= set(node):
            raise ValueError(
                f"--prices: node type {node_type} needs dbu_per_hour and vm_usd_per_hour"
            )
    return prices


def collect(
    spark,
    runs: list[dict],
    prices: dict,
    *,
    catalog: str,
    schema: str = "monitoring",
    collection_date: str,
    airflow_run_id: str,
) -> dict[str, Any]:
    """MERGE the DAGs' runs among ``runs`` into ``<catalog>.<schema>.job_runs`` by ``run_id``;
    what was done: the table, rows merged, runs skipped as not ours (their names)."""
    from delta.tables import DeltaTable

    rows, foreign = {}, []
    for run in runs:
        row = run_row(run, prices, collection_date=collection_date, airflow_run_id=airflow_run_id)
        if row is None:
            foreign.append(str(run.get("run_name")))
        else:
            rows[row["run_id"]] = row  # a run listed twice: its last answer
    table = ensure_table(spark, JOB_RUNS, catalog, schema)
    if rows:
        frame = check_frame(
            spark.createDataFrame(
                [tuple(r[c] for c in JOB_RUNS.names) for r in rows.values()],
                ", ".join(f"{c.name} {c.type}" for c in JOB_RUNS.columns),
            ),
            JOB_RUNS,
        )
        retry_on_conflict(
            lambda: (
                DeltaTable.forName(spark, table)
                .alias("t")
                .merge(frame.alias("s"), "t.run_id = s.run_id")
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        )
    return {"table": table, "merged": len(rows), "skipped": foreign, "rows": list(rows.values())}
