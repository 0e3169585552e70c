"""Checks on what a request names: the job script to run, a Volumes path, an integer.

A run starts a script with this user's rights and the Files API reads and writes this user's
disk, so a path is accepted only once it resolves (symlinks included) inside the folders the
workspace serves. Each refusal is an :class:`ApiError` with Databricks' error code.
"""

from __future__ import annotations

import os
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


def int_parameter(value: object, name: str, default: int = 0) -> int:
    """``value`` as an integer, ``default`` when absent or empty."""
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{name} must be an integer") from None
