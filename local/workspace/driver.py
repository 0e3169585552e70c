"""The warm driver: one long-lived process keeping a SparkSession, running scripts on request.

Protocol (JSON lines): the server writes ``{"script", "args", "log"}`` to stdin; the driver
answers ``{"ok", "error", "error_trace"}`` on the pipe it was given as stdout. The process's
own file descriptors 1 and 2 are pointed at the driver log, so JVM output never mixes with
the protocol; each run's Python output goes to that run's log.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from local.spark.runtime import LocalLayout, build_session, register_tables
from local.workspace.runner import exit_with_workspace, run_script


def main() -> int:
    exit_with_workspace()
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    driver_log = os.environ.get("LOCAL_DRIVER_LOG", os.devnull)
    log_fd = os.open(driver_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)

    layout = LocalLayout.from_env()
    spark = build_session(layout)
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        register_tables(spark, layout.warehouse_dir)
        result = run_script(
            Path(request["script"]), request["args"], Path(request["log"]), layout.job_dirs
        )
        # A script may stop the shared session; the next run gets a fresh one.
        if spark.sparkContext._jsc is None:
            spark = build_session(layout)
        protocol.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
