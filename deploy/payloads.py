"""``python -m deploy.payloads render``: every ``runs/submit`` body an environment sends,
rendered as Airflow renders it and validated against the Jobs API, one JSON file per task.

    python -m deploy.payloads render --env prod [--git-url URL] [--git-ref REF]
                                    [--compute cluster|serverless]
                                    [--logical-date 2019-11-01] [--out DIR]
    make payloads ENV=prod [ARGS="--git-ref v1.4.0"]   # both computes of dev / prod
    python -m deploy.payloads validate FILE.json ...   # e.g. a one-time job made from a payload

1. Loads ``dags/`` as a ``DagBag`` with ``ECOM_ENV=<env>``. ``ECOM_GIT_URL`` / ``ECOM_GIT_REF``
   come from ``--git-url`` / ``--git-ref``, else from the environment, else from placeholders
   (``PLACEHOLDER_GIT_URL`` / ``PLACEHOLDER_GIT_REF``, flagged in the output and the index).
   The optional deployment variables (``ECOM_CLUSTER_POLICY_ID``, ``ECOM_POLICY_LIBRARIES``,
   ``ECOM_INSTANCE_POOL_ID``, ``ECOM_DRIVER_INSTANCE_POOL_ID``, ``ECOM_GIT_PROVIDER``,
   ``ECOM_ONLINE_SYNC_PIPELINE_ID``) are read from the environment, as on the deployment:
   export them to render its payloads.
2. For every ``DatabricksSubmitRunOperator`` task, builds Airflow's own template context of a
   scheduled run of the logical date (the task runner's ``RuntimeTaskInstance``: ``ds``,
   ``data_interval_*``, ``dag``, ``task``, ``ti``, ``run_id``, ``params`` at their defaults,
   ...), renders the operator's templated fields with Airflow's ``render_template_fields`` and
   takes the body the operator would POST (its ``_prepare_submit_json``: ``json`` merged with
   ``run_name`` and ``idempotency_token``, numbers as strings, as the provider sends them).
3. Validates each body with :mod:`deploy.jobs_api_schema` (the ``databricks-sdk`` types of the
   Jobs API) and checks that no Jinja was left unrendered.
4. Writes ``<out>/<dag_id>/<task_id>.json`` and ``<out>/index.json`` (default ``out``:
   ``.local/payloads/<env>``, ``.local/payloads/<env>-serverless`` with ``--compute
   serverless``), sorted keys, so two renders diff cleanly
   (``git diff --no-index .local/payloads/dev .local/payloads/prod``); files of tasks that
   no longer exist are removed (only those the previous ``index.json`` listed).

The output depends on nothing but the code, the arguments and the ``ECOM_*`` variables: ``ti.id``
(the ``idempotency_token``) is the nil UUID and the run id is the scheduled run's. Prints one
line per payload; exits 1 listing every problem with its JSON path when any payload is invalid.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from deploy.environment import environment, importable
from deploy.jobs_api_schema import Problem, validate_submit_payload

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOGICAL_DATE = "2019-11-01"  # the first of a month: monthly DAGs run on it as well
PLACEHOLDER_GIT_URL = "https://git.invalid/PLACEHOLDER_GIT_URL/ecom-ml-platform.git"
PLACEHOLDER_GIT_REF = "PLACEHOLDER_GIT_REF"
NIL_TI_ID = uuid.UUID(int=0)
INDEX = "index.json"


@dataclass(frozen=True)
class Payload:
    """One task's rendered ``runs/submit`` body and its problems."""

    dag_id: str
    task_id: str
    logical_date: str
    body: dict[str, Any]
    problems: tuple[Problem, ...]

    @property
    def file(self) -> str:
        return f"{self.dag_id}/{self.task_id}.json"

    def summary(self) -> str:
        body = self.body
        tasks = body.get("tasks") or [body]
        environments = {
            e.get("environment_key"): e.get("spec") or {}
            for e in body.get("environments") or []
            if isinstance(e, dict)
        }
        what = ", ".join(_task_summary(t, environments) for t in tasks)
        state = "ok     " if not self.problems else f"INVALID ({len(self.problems)})"
        return f"{state} {self.dag_id}.{self.task_id} [{self.logical_date}]: {what}"


def _task_summary(task: dict[str, Any], environments: dict[str, dict[str, Any]]) -> str:
    if "spark_python_task" in task:
        what = task["spark_python_task"].get("python_file", "?")
    else:
        what = next((k for k in task if k.endswith("_task")), "?")
    if "environment_key" in task:
        spec = environments.get(task["environment_key"]) or {}
        dependencies = len(spec.get("dependencies") or [])
        return (
            f"{what} | serverless, environment version {spec.get('environment_version')} | "
            f"{dependencies} dependencies"
        )
    cluster = task.get("new_cluster")
    if not isinstance(cluster, dict):
        return what
    autoscale = cluster.get("autoscale") or {}
    size = (
        f"{autoscale.get('min_workers')}-{autoscale.get('max_workers')} workers"
        if autoscale
        else f"{cluster.get('num_workers', 0)} workers"
    )
    nodes = (
        f"pool {cluster['instance_pool_id']}"
        if "instance_pool_id" in cluster
        else str(cluster.get("node_type_id"))
    )
    availability = (cluster.get("azure_attributes") or {}).get("availability")
    parts = [what, str(cluster.get("spark_version")), size, nodes]
    if availability:
        parts.append(availability)
    if "policy_id" in cluster:
        parts.append(f"policy {cluster['policy_id']}")
    libraries = len(task.get("libraries") or [])
    parts.append(f"{libraries} {'library' if libraries == 1 else 'libraries'}")
    return " | ".join(parts)


def load_dagbag(env: str, git_url: str, git_ref: str, compute: str | None = None):
    """The DAGs of ``dags/`` as the scheduler of ``env`` parses them (``compute``: the
    deployment's ``ECOM_COMPUTE``, None for the environment's own setting)."""
    importable()
    with contextlib.ExitStack() as stack:
        if "AIRFLOW_HOME" not in os.environ:  # never create ~/airflow just to parse the DAGs
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="payloads-"))
            stack.enter_context(environment(AIRFLOW_HOME=home))
        stack.enter_context(
            environment(
                ECOM_ENV=env,
                ECOM_GIT_URL=git_url,
                ECOM_GIT_REF=git_ref,
                ECOM_COMPUTE=compute or os.environ.get("ECOM_COMPUTE"),
                AIRFLOW__CORE__LOAD_EXAMPLES="False",
                # As the deployment's scheduler must run (a cleared task reruns its job: the
                # DAGs refuse to import without it, ecom_airflow.tasks.require_rerun_on_clear).
                AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS="True",
                # Airflow's own info lines would bury the summary (read when Airflow is imported).
                AIRFLOW__LOGGING__LOGGING_LEVEL=os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL")
                or "WARNING",
            )
        )
        from airflow.dag_processing.dagbag import DagBag

        from ecom_airflow.config import current_environment

        current_environment()  # a refused setting (e.g. a branch as git ref) fails once, here
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        errors = "\n".join(
            f"  {path}: {error}" for path, error in sorted(bag.import_errors.items())
        )
        raise RenderError(f"the DAGs of ECOM_ENV={env} do not import:\n{errors}")
    return bag


class RenderError(Exception):
    """The payloads cannot be rendered (a DAG import error, a bad argument)."""


def _scheduled_run(dag, logical_date: str):
    """The ``DagRun`` (task-runner model) of the scheduled run at or after ``logical_date``."""
    import pendulum
    from airflow.models.dagrun import DagRun as DagRunModel
    from airflow.sdk.api.datamodels._generated import DagRun
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction
    from airflow.utils.types import DagRunType

    earliest = pendulum.parse(logical_date, tz="UTC")
    timetable = coerce_to_core_timetable(dag.timetable)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=earliest, latest=None, catchup=True),
    )
    if info is None:
        raise RenderError(f"{dag.dag_id} has no scheduled run at or after {logical_date}")
    run_id = DagRunModel.generate_run_id(
        run_type=DagRunType.SCHEDULED, logical_date=info.logical_date, run_after=info.run_after
    )
    return DagRun(
        dag_id=dag.dag_id,
        run_id=run_id,
        logical_date=info.logical_date,
        data_interval_start=info.data_interval.start,
        data_interval_end=info.data_interval.end,
        run_after=info.run_after,
        start_date=info.run_after,
        end_date=None,
        run_type=DagRunType.SCHEDULED,
        state="running",
        conf={},
        consumed_asset_events=[],
        partition_key=None,
    )


def template_context(task, dag_run) -> dict[str, Any]:
    """The Task SDK's template context of ``task`` in ``dag_run`` (try 1), as a worker has it."""
    from airflow.sdk.api.datamodels._generated import TIRunContext
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    ti = RuntimeTaskInstance.model_construct(
        id=NIL_TI_ID,
        task_id=task.task_id,
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        try_number=1,
        map_index=-1,
        dag_version_id=NIL_TI_ID,
        task=task,
        max_tries=task.retries,
        start_date=dag_run.run_after,
        _ti_context_from_server=TIRunContext(dag_run=dag_run, max_tries=task.retries),
    )
    return ti.get_template_context()


def render_task(task, dag_run) -> dict[str, Any]:
    """The body ``task`` (a ``DatabricksSubmitRunOperator``) POSTs in ``dag_run``."""
    context = template_context(task, dag_run)
    task.render_template_fields(context)
    return task._prepare_submit_json(context)


def _unrendered(value: Any, path: str = "$") -> list[Problem]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _unrendered(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unrendered(v, f"{path}[{i}]")]
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return [Problem(path, f"Jinja left unrendered: {value!r}")]
    return []


def render_payloads(
    env: str,
    *,
    git_url: str,
    git_ref: str,
    logical_date: str = DEFAULT_LOGICAL_DATE,
    compute: str | None = None,
) -> list[Payload]:
    """Every ``DatabricksSubmitRunOperator`` body of ``env``, rendered and validated, sorted."""
    bag = load_dagbag(env, git_url, git_ref, compute)  # first: it imports Airflow
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    payloads = []
    for dag_id in sorted(bag.dags):
        dag = bag.dags[dag_id]
        dag_run = _scheduled_run(dag, logical_date)
        for task in sorted(dag.tasks, key=lambda t: t.task_id):
            if not isinstance(task, DatabricksSubmitRunOperator):
                continue
            body = render_task(task, dag_run)
            problems = validate_submit_payload(body) + _unrendered(body)
            payloads.append(
                Payload(
                    dag_id=dag_id,
                    task_id=task.task_id,
                    logical_date=dag_run.logical_date.date().isoformat(),
                    body=body,
                    problems=tuple(problems),
                )
            )
    if not payloads:
        raise RenderError(f"no DatabricksSubmitRunOperator task in the DAGs of ECOM_ENV={env}")
    return payloads


def dumps(value: Any) -> str:
    """The stable text of a JSON file: sorted keys, two-space indent, final newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_payloads(payloads: list[Payload], out: Path, index: dict[str, Any]) -> None:
    """Write one file per payload and the index; remove the files of tasks that disappeared."""
    index_path = out / INDEX
    if out.exists() and any(out.iterdir()) and not index_path.is_file():
        raise RenderError(f"{out} is not empty and has no {INDEX}: refusing to write into it")
    previous = json.loads(index_path.read_text())["files"] if index_path.is_file() else []
    files = [p.file for p in payloads]
    for stale in sorted(set(previous) - set(files)):
        if Path(stale).is_absolute() or ".." in Path(stale).parts:
            raise RenderError(f"{index_path} lists {stale!r}, outside {out}")
        path = out / stale
        path.unlink(missing_ok=True)
        if path.parent != out and path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
    for payload in payloads:
        path = out / payload.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(payload.body))
    index_path.write_text(dumps({**index, "files": files}))


def _report(found: dict[str, tuple[Problem, ...]]) -> int:
    """Print every problem (by file) to stderr; 1 if there is any, else 0."""
    invalid = {name: problems for name, problems in found.items() if problems}
    if not invalid:
        return 0
    print(f"\n{len(invalid)} of {len(found)} payloads are invalid:", file=sys.stderr)
    for name, problems in invalid.items():
        for problem in problems:
            print(f"  {name} {problem}", file=sys.stderr)
    return 1


def _date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


def render(args: argparse.Namespace) -> int:
    git_url = args.git_url or os.environ.get("ECOM_GIT_URL") or PLACEHOLDER_GIT_URL
    git_ref = args.git_ref or os.environ.get("ECOM_GIT_REF") or PLACEHOLDER_GIT_REF
    placeholder = PLACEHOLDER_GIT_URL in git_url or git_ref == PLACEHOLDER_GIT_REF
    if args.compute == "serverless" and args.env == "local":
        print(
            "error: the local workspace has no serverless compute; use --env dev or prod",
            file=sys.stderr,
        )
        return 2
    name = args.env if args.compute != "serverless" else f"{args.env}-serverless"
    out = args.out or ROOT / ".local" / "payloads" / name
    try:
        payloads = render_payloads(
            args.env,
            git_url=git_url,
            git_ref=git_ref,
            logical_date=args.logical_date,
            compute=args.compute,
        )
        index = {
            "env": args.env,
            "compute": args.compute or "cluster",
            "logical_date": args.logical_date,
            "git_url": git_url,
            "git_ref": git_ref,
            "git_source_is_placeholder": placeholder,
        }
        write_payloads(payloads, out, index)
    except (RenderError, ValueError) as error:  # config refuses a ref, a DAG does not import
        print(f"error: {error}", file=sys.stderr)
        return 2
    for payload in payloads:
        print(payload.summary())
    print(f"{len(payloads)} payloads of ECOM_ENV={args.env} written to {_shown(out)}")
    if placeholder and args.env != "local":
        print(
            "note: the git source is a placeholder; pass --git-url/--git-ref (or set "
            "ECOM_GIT_URL/ECOM_GIT_REF) to render the deployment's"
        )
    return _report({p.file: p.problems for p in payloads})


def validate(args: argparse.Namespace) -> int:
    """Validate hand-made bodies (e.g. a one-time job derived from a rendered payload)."""
    found = {}
    for path in args.files:
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            return 2
        found[str(path)] = problems = tuple(validate_submit_payload(body) + _unrendered(body))
        print(f"{'ok     ' if not problems else f'INVALID ({len(problems)})'} {path}")
    return _report(found)


def main(argv: list[str] | None = None) -> int:
    importable()
    from ecom_airflow.config import COMPUTE_KINDS, ENVIRONMENT_NAMES

    cli = argparse.ArgumentParser(
        prog="python -m deploy.payloads",
        description="Render every runs/submit body of an environment, validated against the "
        "Jobs API, one JSON file per task (see the module's docstring).",
    )
    commands = cli.add_subparsers(dest="command", required=True)
    rendering = commands.add_parser("render", help="render and validate every runs/submit body")
    rendering.add_argument("--env", required=True, choices=ENVIRONMENT_NAMES)
    rendering.add_argument(
        "--git-url", help="ECOM_GIT_URL (default: $ECOM_GIT_URL, else a placeholder)"
    )
    rendering.add_argument(
        "--git-ref", help="ECOM_GIT_REF (default: $ECOM_GIT_REF, else a placeholder)"
    )
    rendering.add_argument(
        "--logical-date", type=_date, default=DEFAULT_LOGICAL_DATE, help="YYYY-MM-DD"
    )
    rendering.add_argument(
        "--compute",
        choices=COMPUTE_KINDS,
        help="ECOM_COMPUTE: job clusters (default) or serverless jobs compute",
    )
    rendering.add_argument("--out", type=Path, help="default: .local/payloads/<env>[-serverless]")
    rendering.set_defaults(run=render)
    validating = commands.add_parser("validate", help="validate runs/submit bodies in JSON files")
    validating.add_argument("files", nargs="+", type=Path)
    validating.set_defaults(run=validate)
    args = cli.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
