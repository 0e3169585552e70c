"""The Jobs 2.2 runs API: submit a one-task run, follow it, read its output, cancel it.

A submitted body is validated as Databricks validates it, against the ``databricks-sdk``
request types (:mod:`deploy.jobs_api_schema`): the multi-task form (``tasks: [{task_key, ...}]``)
on API 2.1 and later, the single-task form only on 2.0; unknown or misplaced fields, wrong
types and missing required fields are a 400 ``INVALID_PARAMETER_VALUE`` naming their JSON
path. The local workspace then runs the run's one ``spark_python_task`` (a run of several
tasks is refused: a local limit, not Databricks').

Runs are answered in the shape of Databricks' ``runs/get`` (one ``SUBMIT_RUN`` with one task
whose run id is offset by ``TASK_RUN_OFFSET``), since the Airflow operator, hook and trigger
and ``databricks-sdk`` parse exactly that.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from deploy.jobs_api_schema import validate_submit_payload
from local.workspace.errors import ApiError
from local.workspace.limits import parse_json_body, read_tail
from local.workspace.state import Workspace, WorkspaceState
from local.workspace.store import TASK_RUN_OFFSET
from local.workspace.validation import int_parameter, validate_python_file, validate_task_parameters

MAX_TOKEN_LENGTH = 64
MAX_PROBLEMS_SHOWN = 5
MAX_LIST_LIMIT = 25  # runs/list: Databricks' largest page
MAX_LOG_CHARS = 100_000  # runs/get-output: the tail of the log it answers
RUN_TYPES = ("JOB_RUN", "WORKFLOW_RUN", "SUBMIT_RUN")

router = APIRouter()


async def _json_body(request: Request) -> dict:
    raw = await request.body()  # at most MAX_JSON_BODY_BYTES (local.workspace.limits)
    if not raw:
        return {}
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "MALFORMED_REQUEST", "The request body must be a JSON object")
    return body


async def _run_id(request: Request, key: str = "run_id") -> int:
    value = request.query_params.get(key)
    if value is None:
        value = (await _json_body(request)).get(key)
    if value is None:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{key} is required")
    return int_parameter(value, key)


def _load(workspace: WorkspaceState, run_id: int) -> dict:
    run = workspace.store.get(run_id)
    if run is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
    return run


def _state(run: dict) -> dict:
    state = {
        "life_cycle_state": run["life_cycle_state"],
        "state_message": run["state_message"],
        "user_cancelled_or_timedout": run["result_state"] in ("CANCELED", "TIMEDOUT"),
    }
    if run["result_state"]:
        state["result_state"] = run["result_state"]
    return state


def _cluster_spec(payload: dict) -> dict:
    """The submitted task's compute, as ``runs/get`` reports it."""
    tasks = payload.get("tasks")
    task = tasks[0] if isinstance(tasks, list) and tasks else payload
    if "environment_key" in task:
        return {"environment_key": task["environment_key"]}
    return {"new_cluster": task.get("new_cluster", {})}


# The compute fields of a submitted task that runs/get echoes on the task, as Databricks does.
TASK_COMPUTE_FIELDS = ("new_cluster", "existing_cluster_id", "environment_key", "libraries")


def durations(run: dict) -> dict[str, int]:
    """The phases of ``run`` in milliseconds, as Databricks reports them: ``queue_duration``
    (submitted -> left the queue), ``setup_duration`` (-> the task started executing: a warm
    driver's JVM start, a cold process's launch), ``execution_duration`` (-> the end),
    ``cleanup_duration`` (nothing to tear down locally: 0) and ``run_duration`` (left the queue
    -> the end). A phase not reached yet, or not finished, is 0."""
    submit, start = run["submit_time"], run["start_time"]
    running, end = run.get("running_time") or 0, run["end_time"]
    # A run cancelled while queued was queued until it ended.
    queue = start - submit if start else (end - submit if end else 0)
    # A run that ended before its task ran (a driver that never came up) was all setup.
    setup = running - start if running else (end - start if end and start else 0)
    return {
        "queue_duration": max(0, queue),
        "setup_duration": max(0, setup),
        "execution_duration": max(0, end - running) if end and running else 0,
        "cleanup_duration": 0,
        "run_duration": max(0, end - start) if end and start else 0,
    }


def describe(run: dict, base_url: str, *, expand_tasks: bool = True) -> dict:
    """``run`` as Databricks' ``runs/get`` answers it (``runs/list`` leaves out the tasks and
    the cluster unless asked to ``expand_tasks``).

    A run submitted in the multi-task form (Jobs API 2.1+) reports its setup, execution and
    cleanup durations on its task and 0 at the top (the run's total is ``run_duration``); one
    submitted in the single-task form of API 2.0 reports them at the top as well.
    """
    payload = json.loads(run["payload"])
    end = run["end_time"]
    start = run["start_time"]
    phases = durations(run)
    submitted = payload["tasks"][0] if isinstance(payload.get("tasks"), list) else payload
    task = {
        "run_id": run["run_id"] + TASK_RUN_OFFSET,
        "task_key": run["task_key"],
        "attempt_number": 0,
        "state": _state(run),
        "start_time": start,
        "end_time": end,
        **phases,
        "spark_python_task": {
            "python_file": run["python_file"],
            "parameters": json.loads(run["parameters"]),
        },
        **{k: submitted[k] for k in TASK_COMPUTE_FIELDS if k in submitted},
        "run_page_url": f"{base_url}/jobs/runs/{run['run_id']}",
    }
    multi_task = isinstance(payload.get("tasks"), list)
    described = {
        "job_id": 0,
        "run_id": run["run_id"],
        "number_in_job": run["run_id"],
        "run_name": run["run_name"],
        "run_type": "SUBMIT_RUN",
        "run_page_url": f"{base_url}/jobs/runs/{run['run_id']}",
        "state": _state(run),
        "start_time": start or run["submit_time"],
        "end_time": end,
        "queue_duration": phases["queue_duration"],
        "run_duration": phases["run_duration"],
        "setup_duration": 0 if multi_task else phases["setup_duration"],
        "execution_duration": 0 if multi_task else phases["execution_duration"],
        "cleanup_duration": 0,
        "creator_user_name": "local",
        "git_source": payload.get("git_source"),
    }
    if expand_tasks:
        described["tasks"] = [task]
        described["cluster_spec"] = _cluster_spec(payload)
    return described


def _validated(body: dict, version: str) -> None:
    """Refuse a body the Jobs API of ``version`` would refuse, naming each problem's path."""
    problems = validate_submit_payload(body, api_version=version)
    if problems:
        shown = "; ".join(str(p) for p in problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"Invalid runs/submit request: {shown}" + (f" (and {more} more)" if more > 0 else ""),
        )


def _single_task(body: dict) -> dict:
    """The one task of a submitted run: ``tasks[0]``, or the body itself in the flat form."""
    tasks = body.get("tasks")
    if tasks is None:
        return {"task_key": body.get("run_name") or "main", **body}
    if isinstance(tasks, list) and len(tasks) == 1 and isinstance(tasks[0], dict):
        return tasks[0]
    raise ApiError(
        400, "INVALID_PARAMETER_VALUE", "The local workspace runs exactly one task per run"
    )


def _idempotency_token(body: dict) -> str | None:
    """The run's idempotency token: at most 64 printable characters; empty means none."""
    token_value = body.get("idempotency_token")
    if token_value is not None and (
        not isinstance(token_value, str)
        or len(token_value) > MAX_TOKEN_LENGTH
        or not token_value.isprintable()
    ):
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            "idempotency_token must be a string of at most 64 printable characters",
        )
    return token_value or None


@router.post("/api/{version}/jobs/runs/submit")
async def submit(version: str, request: Request, workspace: Workspace):
    body = await _json_body(request)
    _validated(body, version)
    task = _single_task(body)
    spark_task = task.get("spark_python_task")
    if not isinstance(spark_task, dict):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "spark_python_task is required")
    parameters = spark_task.get("parameters") or []
    if not isinstance(parameters, list) or not all(isinstance(p, str) for p in parameters):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "parameters must be a list of strings")
    python_file = validate_python_file(workspace.layout, spark_task.get("python_file"))
    validate_task_parameters(workspace.layout, parameters)
    token_value = _idempotency_token(body)
    timeout = int_parameter(
        body.get("timeout_seconds", task.get("timeout_seconds")), "timeout_seconds"
    )
    run_id, created = workspace.store.create(
        run_name=str(body.get("run_name") or "Untitled"),
        task_key=str(task.get("task_key") or "main"),
        payload=body,
        python_file=python_file,
        parameters=parameters,
        token=token_value,
        timeout=timeout,
    )
    if created:
        print(f"[workspace] run {run_id} submitted: {python_file} {' '.join(parameters)}")
        workspace.cluster.wake()
    return {"run_id": run_id}


@router.get("/api/{version}/jobs/runs/get")
async def get_run(version: str, request: Request, workspace: Workspace):
    return describe(_load(workspace, await _run_id(request)), workspace.base_url)


@router.get("/api/{version}/jobs/runs/get-output")
async def get_output(version: str, request: Request, workspace: Workspace):
    run = _load(workspace, await _run_id(request))
    output: dict = {"metadata": describe(run, workspace.base_url)}
    if run["error"]:
        output["error"] = run["error"]
        output["error_trace"] = run["error_trace"] or ""
    if run["log_path"]:
        # Only the tail is read, in a worker thread: the event loop serves other requests.
        tail = await run_in_threadpool(read_tail, Path(run["log_path"]), MAX_LOG_CHARS)
        if tail is not None:
            output["logs"], output["logs_truncated"] = tail
    return output


@router.post("/api/{version}/jobs/runs/cancel")
async def cancel(version: str, request: Request, workspace: Workspace):
    run = _load(workspace, await _run_id(request))
    workspace.cluster.cancel(run["run_id"])
    return {}


def _flag(request: Request, name: str) -> bool | None:
    """A boolean query parameter (``true``/``false``, as the SDK sends them), None if absent."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if value.lower() not in ("true", "false"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{name} must be true or false")
    return value.lower() == "true"


def _page_token(value: str | None) -> int | None:
    """A ``next_page_token`` this server handed out (the run id below which the page goes
    on); anything else is refused as Databricks refuses a token it did not issue."""
    if value in (None, ""):
        return None
    if not (value.isascii() and value.isdigit()):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid page_token {value[:40]!r}")
    return int_parameter(value, "page_token")


@router.get("/api/{version}/jobs/runs/list")
async def list_runs(version: str, request: Request, workspace: Workspace):
    """Runs, newest first, ``limit`` (default 20, at most 25; 0 means 25) at a time, with
    Databricks' filters: ``start_time_from`` / ``start_time_to`` (ms, both ends included),
    ``run_type`` (every local run is a ``SUBMIT_RUN``), ``active_only`` / ``completed_only``,
    ``expand_tasks``; the next page follows ``next_page_token`` (as ``databricks-sdk``'s
    ``jobs.list_runs`` iterates) or the deprecated ``offset``."""
    query = request.query_params
    limit = int_parameter(query.get("limit"), "limit", 20) or MAX_LIST_LIMIT
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", f"limit must be between 0 and {MAX_LIST_LIMIT}"
        )
    offset = max(int_parameter(query.get("offset"), "offset", 0), 0)
    run_type = query.get("run_type")
    if run_type not in (None, "", *RUN_TYPES):
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", f"run_type must be one of {', '.join(RUN_TYPES)}"
        )
    active_only, completed_only = _flag(request, "active_only"), _flag(request, "completed_only")
    if active_only and completed_only:
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", "active_only and completed_only cannot both be true"
        )
    if run_type not in (None, "", "SUBMIT_RUN"):
        return {"runs": [], "has_more": False}  # no job runs or workflow runs locally
    token = _page_token(query.get("page_token"))
    rows = workspace.store.page(
        limit + 1,
        before_run_id=token,
        offset=0 if token is not None else offset,  # a token already says where to go on
        start_time_from=int_parameter(query.get("start_time_from"), "start_time_from", 0) or None,
        start_time_to=int_parameter(query.get("start_time_to"), "start_time_to", 0) or None,
        active=True if active_only else False if completed_only else None,
    )
    expand = bool(_flag(request, "expand_tasks"))
    page = rows[:limit]
    body: dict = {
        "runs": [describe(r, workspace.base_url, expand_tasks=expand) for r in page],
        "has_more": len(rows) > limit,
    }
    if body["has_more"]:
        body["next_page_token"] = str(page[-1]["run_id"])
    return body
