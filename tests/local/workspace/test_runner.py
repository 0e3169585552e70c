"""The runner executes a job script as a ``spark_python_task`` runs it (no Spark needed here).

Each case runs the runner in a fresh interpreter whose ``sys.path`` holds the project root only,
as the workspace's driver starts: the test session itself has ``spark_jobs/`` on its path
(pyproject's ``pythonpath``), which would hide a job that cannot find the library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.processes import ROOT

RUN = """
import json, sys
from pathlib import Path
from local.spark.runtime import LocalLayout
from local.workspace.runner import run_script
script, log = Path(sys.argv[1]), Path(sys.argv[2])
before = sys.path[:]
result = run_script(script, [], log, LocalLayout().job_dirs)
print(json.dumps({"result": result, "path_restored": sys.path == before}))
"""


def _run(script, log) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(script), str(log)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_a_local_only_job_imports_the_shipped_library(tmp_path):
    """A script outside spark_jobs/ (as local/jobs/table_summary.py is) finds the clickstream
    library, and the runner restores sys.path afterwards."""
    script = tmp_path / "job.py"
    script.write_text(
        "from clickstream.core.schema import parse_ds\nprint('parsed', parse_ds('2019-10-01'))\n"
    )
    log = tmp_path / "run.log"
    outcome = _run(script, log)
    assert outcome["result"] == {"ok": True, "error": None, "error_trace": None}, log.read_text()
    assert "parsed 2019-10-01" in log.read_text()
    assert outcome["path_restored"]


def test_a_failing_job_is_reported_not_raised(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("raise ValueError('bad input')\n")
    outcome = _run(script, tmp_path / "run.log")
    assert outcome["result"]["ok"] is False
    assert outcome["result"]["error"] == "ValueError: bad input"
