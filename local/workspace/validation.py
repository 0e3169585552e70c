"""Checks on what a request names: the job script to run, a Volumes path, an integer.

A run starts a script with this user's rights and the Files API reads and writes this user's
disk, so a path is accepted only once it resolves (symlinks included) inside the folders the
workspace serves. Each refusal is an :class:`ApiError` with Databricks' error code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

from local.spark.runtime import LocalLayout
from local.workspace.errors import ApiError

_JOB_FOLDERS = "spark_jobs/ or local/jobs/"


def _name_max(base: Path) -> int:
    try:
        return os.pathconf(base, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _resolve(base: Path, relative: str, what: str) -> Path:
    """``base / relative`` with symlinks resolved; a NUL byte or an over-long name is a 400."""
    if "\x00" in relative:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{what} contains a NUL byte")
    limit = _name_max(base)
    if any(len(part.encode()) > limit for part in relative.split("/")):
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", f"{what} has a name longer than {limit} bytes"
        )
    try:
        path = (base / relative).resolve()
        path.exists()  # raises for a name the file system cannot hold (ENAMETOOLONG)
        return path
    except (OSError, ValueError) as error:
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"{what} {relative[:200]!r} is not a valid path: {error}",
        ) from None


def validate_python_file(layout: LocalLayout, python_file: object) -> str:
    """``python_file`` must name a .py file inside a job folder, relative to the project root.

    The job folders are spark_jobs/ and the local-only local/jobs/ (``LocalLayout.job_dirs``).
    Refused: absolute paths, ``..`` segments, anything but ``.py``, and a path that resolves
    outside the job folders (a symlink pointing out of them included).
    """
    if not isinstance(python_file, str) or not python_file:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "spark_python_task.python_file is required")
    relative = Path(python_file)
    if relative.is_absolute() or ".." in relative.parts or relative.suffix != ".py":
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"python_file {python_file!r} must be a relative path to a .py file in {_JOB_FOLDERS}",
        )
    resolved = _resolve(layout.root, python_file, "python_file")
    if not any(resolved.is_relative_to(folder.resolve()) for folder in layout.job_dirs):
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"python_file {python_file!r} is outside the job folders {_JOB_FOLDERS}",
        )
    if not resolved.is_file():
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"python_file {python_file!r} not found")
    return relative.as_posix()


def volume_path(layout: LocalLayout, raw: str) -> Path:
    """Map ``Volumes/<catalog>/<schema>/<volume>/...`` to the local root, refusing escapes."""
    decoded = unquote(raw).strip("/")
    parts = decoded.split("/")
    if not parts or parts[0] != "Volumes" or len(parts) < 2:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"/{decoded} is not a /Volumes path")
    if any(part in ("..", ".", "") for part in parts) or "\\" in decoded:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"/{decoded} is not a normalised path")
    root = layout.volumes_root.resolve()
    path = _resolve(root, "/".join(parts[1:]), "the Volumes path")
    if not path.is_relative_to(root):
        raise ApiError(403, "PERMISSION_DENIED", f"/{decoded} escapes the Volumes root")
    return path


# What a job's Spark or Python could open besides a plain path: never a local job's parameter.
_FILE_SYSTEM_SCHEMES = ("file:", "dbfs:", "hdfs:", "s3:", "s3a:", "s3n:", "gs:", "abfs:", "abfss:")
_FILE_SYSTEM_SCHEMES += ("wasb:", "wasbs:", "adl:")
# Flags whose value starts with "/" without naming a file: an MLflow experiment name is a
# workspace path (/Shared/..., /Users/...), never opened on disk.
NOT_FILE_FLAGS = frozenset({"--experiment"})


def validate_task_parameters(layout: LocalLayout, parameters: list[str]) -> None:
    """A parameter that names a file (an absolute path, a file system URI, or either as the
    value of ``--flag=value``) must be a ``/Volumes/...`` path inside the Volumes root.

    A run writes with this user's rights and the Files API serves the Volumes, so an output in
    /tmp or a copy of any file of the machine is refused here, before a run exists (the jobs
    check their path arguments again, ``clickstream.core.jobs.check_path_arguments``).
    """
    for index, parameter in enumerate(parameters):
        flag, value = (parameters[index - 1] if index else None), parameter
        if parameter.startswith("--") and "=" in parameter:
            flag, value = parameter.split("=", 1)
        named_file = value.startswith("/") or value.lower().startswith(_FILE_SYSTEM_SCHEMES)
        if flag in NOT_FILE_FLAGS or not named_file:
            continue
        try:
            if not value.startswith("/Volumes/"):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "it is not a /Volumes/ path")
            volume_path(layout, value)
        except ApiError as error:
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"parameters[{index}] {parameter[:200]!r}: {error.message} (the local workspace "
                "serves only its Volumes)",
            ) from None


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the API's int64, and SQLite's INTEGER
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


def int_parameter(value: object, name: str, default: int = 0) -> int:
    """``value`` as a 64-bit integer, ``default`` when absent or empty: a JSON integer (an
    integral float too), or a string of ASCII digits (as query strings and the Airflow
    provider send numbers). Anything else, a boolean included, and a number outside the int64
    range is a 400 naming ``name``."""
    if value is None or value == "":
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():  # finite and integral
        number = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{name} must be an integer")
    if not INT64_MIN <= number <= INT64_MAX:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{name} is out of range (a 64-bit integer)")
    return number
