"""Run one job script the way a Databricks ``spark_python_task`` runs it.

Shared by the warm driver (many runs in one long-lived process) and the cold launcher (one
process per run), so both execute scripts identically: the script's folder first on
``sys.path``, ``sys.argv`` set to the task parameters, ``__name__ == "__main__"``, output
captured to the run's log, and the outcome reduced to ``{"ok", "error", "error_trace"}``.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

# Set by the server for the processes it starts (warm drivers, cold job processes).
WORKSPACE_PID_ENV = "LOCAL_WORKSPACE_PID"


def exit_with_workspace(poll_seconds: float = 0.5) -> None:
    """Kill this process's group (the job, its JVM and Python workers) once the workspace
    server that started it is gone.

    A server that dies abruptly (SIGKILL, out of memory, a crash) cannot stop its runs; when
    it starts again it marks them INTERNAL_ERROR and the orchestrator's retry submits them
    anew. A job still running at that point would write the same tables as the retry: two
    writers on one partition, and a run reported as failed that changes data afterwards. So
    no job process outlives its server, as no Databricks run outlives its cluster.
    """
    parent = int(os.environ.get(WORKSPACE_PID_ENV) or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="exit-with-workspace", daemon=True).start()


def _purge_modules(job_dirs: tuple[Path, ...]) -> None:
    """Forget modules imported from the job folders so the next run sees edited code."""
    prefixes = tuple(str(folder) for folder in job_dirs)
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if origin.startswith(prefixes):
            del sys.modules[name]


def run_script(script: Path, args: list[str], log_path: Path, job_dirs: tuple[Path, ...]) -> dict:
    """Execute ``script`` with ``args``; never raises for a failure of the script itself."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [str(script), *args]
    # The script's folder first, as Databricks runs a spark_python_task; then the shipped job
    # folder (job_dirs[0]), so a local-only job imports the clickstream library as well.
    sys.path[:0] = list(dict.fromkeys((str(script.parent), str(job_dirs[0]))))
    result: dict = {"ok": True, "error": None, "error_trace": None}
    with (
        open(log_path, "a", buffering=1, encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit_:
            code = exit_.code
            if code not in (None, 0):
                message = code if isinstance(code, str) else f"exit code {code}"
                result = {
                    "ok": False,
                    "error": f"SystemExit: {message}",
                    "error_trace": traceback.format_exc(),
                }
        except BaseException as error:  # the run's failure, reported, never the driver's
            result = {
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "error_trace": traceback.format_exc(),
            }
            traceback.print_exc()
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
            _purge_modules(job_dirs)
    return result
