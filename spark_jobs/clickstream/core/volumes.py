"""Unity Catalog Volume paths, on Databricks and on the local workspace.

On Databricks ``/Volumes/<catalog>/<schema>/<volume>/...`` is mounted on every node, so a
Volume path is used as is, and Unity Catalog's permissions govern what a job may read or
write: :func:`local_path` leaves every path alone there (and in a test that calls a library
function with a plain folder, without ``LOCAL_VOLUMES_ROOT``).

The local workspace sets ``LOCAL_VOLUMES_ROOT`` for every job, and the same paths resolve under
that folder. There a job may touch nothing else: a path that is not ``/Volumes/...`` (``/tmp/x``,
a relative ``reports/x``, ``file:/...``, ``dbfs:/...``), has a ``..`` part, or resolves out of
the root through a symlink is refused with a ``ValueError``. The jobs check their path
arguments this way before Spark starts (``clickstream.core.jobs.check_path_arguments``);
:func:`local_path` checks again for every library call.
"""

from __future__ import annotations

import os
from pathlib import Path

VOLUMES_ENV = "LOCAL_VOLUMES_ROOT"
VOLUMES_PREFIX = "/Volumes/"
NOT_A_VOLUME = f"is not under {VOLUMES_PREFIX} (the local workspace serves only its Volumes)"


def volumes_root() -> str | None:
    """The local folder behind ``/Volumes`` (the local workspace), or None (Databricks)."""
    return os.environ.get(VOLUMES_ENV) or None


def resolve_volume(path: str, root: str | os.PathLike[str]) -> Path:
    """``path`` (``/Volumes/...``) under ``root``, symlinks resolved.

    Raises ``ValueError`` whose message completes ``"<path> ..."``: not a ``/Volumes/`` path,
    a ``..`` part, a NUL byte, or a result outside ``root`` (a symlink pointing out).
    """
    if not path.startswith(VOLUMES_PREFIX):
        raise ValueError(NOT_A_VOLUME)
    relative = path.removeprefix(VOLUMES_PREFIX)
    if "\x00" in relative:
        raise ValueError("contains a NUL byte")
    if ".." in relative.split("/"):
        raise ValueError("has a '..' part (a path must stay inside the Volumes root)")
    base = Path(root).resolve()
    try:
        resolved = (base / relative).resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long
        raise ValueError(f"is not a valid path: {error}") from None
    if not resolved.is_relative_to(base):
        raise ValueError("resolves outside the Volumes root (through a symlink)")
    return resolved


def local_path(path: str) -> str:
    """Where ``path`` is readable by this process: ``$LOCAL_VOLUMES_ROOT/<...>`` for a Volume.

    Without ``LOCAL_VOLUMES_ROOT`` the path is returned as is. With it, anything but a Volume
    path that stays inside the root (``..`` parts and symlinks pointing out refused) is a
    ``ValueError``, so a job parameter cannot make a job read or write elsewhere on the machine.
    """
    root = volumes_root()
    if root is None:
        return path
    try:
        return str(resolve_volume(path, root))
    except ValueError as error:
        raise ValueError(f"{path!r} {error}") from None
