"""Unity Catalog Volume paths, on Databricks and on the local workspace.

On Databricks ``/Volumes/<catalog>/<schema>/<volume>/...`` is mounted on every node; the local
workspace sets ``LOCAL_VOLUMES_ROOT`` and the same paths resolve under that folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def local_path(path: str) -> str:
    root = os.environ.get("LOCAL_VOLUMES_ROOT")
    if not root or not path.startswith("/Volumes/"):
        return path
    relative = path.removeprefix("/Volumes/")
    if ".." in Path(relative).parts:
        raise ValueError(f"{path} escapes the Volumes root")
    resolved = (Path(root) / relative).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        raise ValueError(f"{path} escapes the Volumes root")
    return str(resolved)
