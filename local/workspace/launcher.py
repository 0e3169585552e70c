"""Cold mode: one process per run. ``python -m local.workspace.launcher RESULT LOG SCRIPT [ARGS]``.

Builds the session exactly as the warm driver does, runs the script with the shared runner and
writes the outcome to ``RESULT`` (JSON) for the server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from local.spark.runtime import LocalLayout, build_session
from local.workspace.runner import exit_with_workspace, run_script


def main(argv: list[str]) -> int:
    result_path, log_path, script, *args = argv
    exit_with_workspace()
    layout = LocalLayout.from_env()
    build_session(layout)
    result = run_script(Path(script), args, Path(log_path), layout.job_dirs)
    Path(result_path).write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
