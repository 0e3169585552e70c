"""Validate a Jobs API ``runs/submit`` request body against the types of ``databricks-sdk``.

The SDK's request classes are generated from Databricks' OpenAPI specification, so they are the
schema of the pinned API version, not a hand-kept list of keys:

* the run-level fields are the keyword arguments of ``JobsAPI.submit`` (``git_source``,
  ``tasks``, ``environments``, ``timeout_seconds``, ``run_name``, ``idempotency_token``, ...);
* a task is a ``jobs.SubmitTask`` in the run's ``tasks``: the multi-task form that Jobs API 2.1
  and later document and the project sends. The single-task form of Jobs API 2.0 (the task's
  fields, ``new_cluster``, ``spark_python_task``, ``libraries``, at the top level) is refused
  unless the body is validated for API ``2.0``;
* below those, every object is the dataclass of its field's type (``compute.ClusterSpec``,
  ``compute.AutoScale``, ``compute.Library``, ``jobs.GitSource``, ...), every list a
  ``List[...]``, every map a ``Dict[str, ...]`` and every enum an ``Enum`` of the API's values.

:func:`validate_submit_payload` walks a body against those types and returns every problem with
its JSON path (``$.new_cluster.autoscale.max_workers``): unknown keys (with the closest known
key), wrong types, values outside an enum, required fields that are missing (dataclass fields
without a default, e.g. ``GitSource.git_url``, ``SparkPythonTask.python_file``) and nulls
(the provider refuses ``None``). Numbers may be strings of digits: the provider's
``normalise_json_content`` sends every number as a string, which the API accepts (protobuf JSON).

A few rules of the API reference that types cannot express are checked too (:data:`RULES`):
one task type per task, one compute per task, unique task keys, environments that exist,
at most one of ``git_branch`` / ``git_tag`` / ``git_commit``, and no node type or cloud
availability next to an instance pool.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Union

from databricks.sdk.service import compute, jobs

CLOUD_ATTRIBUTES = ("aws_attributes", "azure_attributes", "gcp_attributes")
INTEGER = re.compile(r"-?\d+")
NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
COMPUTE_FIELDS = ("new_cluster", "existing_cluster_id", "environment_key")
RULES = (
    "each task has exactly one task type (a field ending in '_task')",
    "a task names at most one compute (new_cluster, existing_cluster_id or, serverless, "
    "environment_key; none is serverless with the default environment); a serverless task "
    "takes its libraries from its environment, not 'libraries'",
    "task keys are unique, and every environment_key names one of the run's environments",
    "git_source names at most one of git_branch, git_tag, git_commit",
    "a cluster with instance_pool_id has no node_type_id, driver_node_type_id or "
    "azure/aws/gcp attributes (the pool defines them); driver_instance_pool_id needs "
    "instance_pool_id",
)


@dataclass(frozen=True)
class Problem:
    """One finding: where in the body (a JSON path) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """A dataclass's field types and its required fields (those without a default)."""
    hints = typing.get_type_hints(cls)
    required = frozenset(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}, required


@cache
def run_fields() -> dict[str, Any]:
    """The run-level fields of ``runs/submit``: the keyword arguments of ``JobsAPI.submit``."""
    hints = typing.get_type_hints(jobs.JobsAPI.submit)
    hints.pop("return", None)
    return hints


@cache
def task_types() -> frozenset[str]:
    """The task type fields of a ``SubmitTask`` (``spark_python_task``, ``pipeline_task``, ...)."""
    return frozenset(name for name in _fields(jobs.SubmitTask)[0] if name.endswith("_task"))


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        module = tp.__module__.rsplit(".", 1)[-1]
        return tp.__name__ if module == "builtins" else f"{module}.{tp.__name__}"
    return str(tp).replace("typing.", "")


def _json_type(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{path}[{key!r}]"


def _check(value: Any, tp: Any, path: str, problems: list[Problem]) -> None:
    """Check ``value`` against the type annotation ``tp``, appending problems."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            problems.append(Problem(path, "is null; leave the key out instead"))
            return
        tp = options[0] if len(options) == 1 else Any
        origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return
    if value is None:
        problems.append(Problem(path, f"is null; expected {_type_name(tp)}"))
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            _check_object(value, tp, path, problems)
        else:
            problems.append(
                Problem(path, f"expected an object ({_type_name(tp)}), got {_json_type(value)}")
            )
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if value not in allowed:
            problems.append(
                Problem(path, f"{value!r} is not one of {_type_name(tp)}: {', '.join(allowed)}")
            )
    elif origin in (list, tuple) or tp is list:
        if not isinstance(value, list):
            problems.append(Problem(path, f"expected an array, got {_json_type(value)}"))
            return
        (item_type,) = typing.get_args(tp)[:1] or (Any,)
        for i, item in enumerate(value):
            _check(item, item_type, _child(path, i), problems)
    elif origin is dict or tp is dict:
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected an object, got {_json_type(value)}"))
            return
        value_type = (typing.get_args(tp) or (str, Any))[1]
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(Problem(_child(path, str(key)), "keys must be strings"))
            _check(item, value_type, _child(path, str(key)), problems)
    elif tp is bool:
        if not isinstance(value, bool):
            problems.append(Problem(path, f"expected a boolean, got {_json_type(value)} {value!r}"))
    elif tp is int:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and INTEGER.fullmatch(value)
        )
        if not ok:
            problems.append(
                Problem(path, f"expected an integer, got {_json_type(value)} {value!r}")
            )
    elif tp is float:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            isinstance(value, str) and NUMBER.fullmatch(value)
        )
        if not ok:
            problems.append(Problem(path, f"expected a number, got {_json_type(value)} {value!r}"))
    elif tp is str:
        if not isinstance(value, str):
            problems.append(Problem(path, f"expected a string, got {_json_type(value)} {value!r}"))
    else:  # a type this walker does not know: say so rather than pass it silently
        problems.append(Problem(path, f"cannot check type {_type_name(tp)}"))


def _check_keys(
    value: dict,
    known: dict[str, Any],
    required: frozenset[str],
    what: str,
    path: str,
    problems: list[Problem],
) -> None:
    for key in sorted(required - value.keys()):
        problems.append(Problem(_child(path, key), f"missing (required by {what})"))
    for key, item in value.items():
        if key in known:
            _check(item, known[key], _child(path, key), problems)
        else:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(Problem(_child(path, str(key)), f"unknown key of {what}{hint}"))


def _check_object(value: dict, cls: type, path: str, problems: list[Problem]) -> None:
    known, required = _fields(cls)
    _check_keys(value, known, required, _type_name(cls), path, problems)
    _check_rules(value, cls, path, problems)


def _check_rules(value: dict, cls: type, path: str, problems: list[Problem]) -> None:
    """The API rules of :data:`RULES` for one object of type ``cls``."""
    if cls is jobs.SubmitTask:
        _check_one_task_type(value, path, problems)
        computes = [k for k in COMPUTE_FIELDS if k in value]
        if len(computes) > 1:
            problems.append(Problem(path, f"names more than one compute ({', '.join(computes)})"))
        serverless = not {"new_cluster", "existing_cluster_id"} & value.keys()
        if serverless and "libraries" in value:
            problems.append(
                Problem(
                    _child(path, "libraries"),
                    "not allowed on serverless compute (an environment_key, or no compute): "
                    "list the libraries as the dependencies of the task's environment",
                )
            )
    elif cls is jobs.GitSource:
        refs = [k for k in ("git_branch", "git_tag", "git_commit") if k in value]
        if len(refs) > 1:
            problems.append(Problem(path, f"sets {' and '.join(refs)}; the API allows one"))
    elif cls is compute.ClusterSpec:
        if "instance_pool_id" in value:
            for key in ("node_type_id", "driver_node_type_id", *CLOUD_ATTRIBUTES):
                if key in value:
                    problems.append(
                        Problem(
                            _child(path, key),
                            "not allowed with instance_pool_id (the pool defines it)",
                        )
                    )
        elif "driver_instance_pool_id" in value:
            problems.append(
                Problem(_child(path, "driver_instance_pool_id"), "needs instance_pool_id")
            )


def _check_one_task_type(value: dict, path: str, problems: list[Problem]) -> None:
    present = sorted(task_types() & value.keys())
    if len(present) != 1:
        found = ", ".join(present) if present else "none"
        problems.append(Problem(path, f"needs exactly one task type (found: {found})"))


def _check_run_rules(payload: dict, problems: list[Problem]) -> None:
    """Unique task keys; each task's ``environment_key`` defined by the run's ``environments``."""
    tasks = payload.get("tasks")
    environments = payload.get("environments")
    if not isinstance(tasks, list):
        return
    keys = [t.get("task_key") for t in tasks if isinstance(t, dict)]
    for key in sorted({k for k in keys if isinstance(k, str) and keys.count(k) > 1}):
        problems.append(Problem("$.tasks", f"task_key {key!r} is used by more than one task"))
    defined = {
        e.get("environment_key")
        for e in (environments if isinstance(environments, list) else [])
        if isinstance(e, dict)
    }
    for i, task in enumerate(tasks):
        key = task.get("environment_key") if isinstance(task, dict) else None
        if key is not None and key not in defined:
            problems.append(
                Problem(
                    _child(_child("$.tasks", i), "environment_key"),
                    f"{key!r} is not one of the run's environments",
                )
            )


def validate_submit_payload(payload: Any, api_version: str = "2.2") -> list[Problem]:
    """Every problem of a ``runs/submit`` body (an empty list: the body is valid).

    Multi-task form (Jobs API 2.1 and later): ``tasks`` is a list of ``SubmitTask``. The
    single-task form (the task's fields without ``task_key`` next to the run-level fields;
    where a name is both, e.g. ``timeout_seconds``, it is the run's) is accepted only for
    ``api_version`` ``2.0``, the API that documents it.
    """
    problems: list[Problem] = []
    if not isinstance(payload, dict):
        return [Problem("$", f"expected an object, got {_json_type(payload)}")]
    task_fields = {k: t for k, t in _fields(jobs.SubmitTask)[0].items() if k != "task_key"}
    if "tasks" not in payload and api_version == "2.0":
        schema = {**task_fields, **run_fields()}  # a name of both levels is the run's
        _check_one_task_type(payload, "$", problems)
    else:
        if "tasks" not in payload:
            problems.append(
                Problem(
                    "$.tasks",
                    f"missing: Jobs API {api_version} runs/submit takes its tasks in 'tasks' "
                    "([{task_key, spark_python_task, ...}]); the single-task form with the "
                    "task's fields at the top level is Jobs API 2.0's",
                )
            )
        for key in sorted(payload.keys() & (task_fields.keys() - run_fields().keys())):
            problems.append(
                Problem(_child("$", key), "a task field at the top level; move it into a task")
            )
        schema = {**run_fields(), **dict.fromkeys(task_fields.keys() - run_fields().keys(), Any)}
    _check_keys(payload, schema, frozenset(), "runs/submit", "$", problems)
    _check_run_rules(payload, problems)
    return sorted(set(problems), key=lambda p: (p.path, p.message))


def _through_sdk(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = options[0] if len(options) == 1 else Any
        origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return tp.from_dict(value).as_dict()
    if origin is list and isinstance(value, list):
        (item_type,) = typing.get_args(tp)[:1] or (Any,)
        return [_through_sdk(item, item_type) for item in value]
    return value


def sdk_round_trip(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` read into the SDK's request types and written back (``from_dict`` /
    ``as_dict`` of ``SubmitTask``, ``JobEnvironment``, ``GitSource``, ...): a body that comes
    back unchanged carries nothing the SDK would drop or reshape."""
    fields = run_fields()
    return {k: _through_sdk(v, fields.get(k, Any)) for k, v in payload.items()}
