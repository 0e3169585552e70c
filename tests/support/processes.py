"""Processes the tests start themselves: their environment, and killing them."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports the project as the tests do."""
    paths = [str(ROOT), str(ROOT / "spark_jobs"), str(ROOT / "include"), str(ROOT / "plugins")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group of ``process`` (started with ``start_new_session``)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
