"""Unity Catalog Volume paths, on Databricks and on the local workspace.

On Databricks ``/Volumes/<catalog>/<schema>/<volume>/...`` is mounted on every node, so a
Volume path is used as is. The local workspace sets ``LOCAL_VOLUMES_ROOT`` and the same paths
resolve under that folder; any other path (a plain local folder in a test) is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

VOLUMES_ENV = "LOCAL_VOLUMES_ROOT"
VOLUMES_PREFIX = "/Volumes/"


def local_path(path: str) -> str:
    """Where ``path`` is readable by this process: ``$LOCAL_VOLUMES_ROOT/<...>`` for a Volume.

    Refuses a Volume path that would leave the root (``..`` parts or a symlink pointing out),
    so a job parameter cannot make a job read or write elsewhere on the machine.
    """
    root = os.environ.get(VOLUMES_ENV)
    if not root or not path.startswith(VOLUMES_PREFIX):
        return path
    relative = path.removeprefix(VOLUMES_PREFIX)
    if ".." in Path(relative).parts:
        raise ValueError(f"{path} escapes the Volumes root")
    base = Path(root).resolve()
    resolved = (base / relative).resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"{path} escapes the Volumes root")
    return str(resolved)
