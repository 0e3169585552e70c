"""Benchmark 6: the full ``make run`` on this machine, split by stage.

Runs ``python -m local.story`` (what ``make run`` runs after ``make setup``) on a fresh
state folder and free ports, so nothing left by an earlier run (tables, MLflow, Airflow's
database) makes it cheaper, and stops that stack afterwards. The stage times come from the
``run_stages.json`` the run writes. Target: under 15 minutes after set-up on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import Figure, Target
from local.workspace.process import free_port

ROOT = Path(__file__).resolve().parent.parent
BUDGET_MINUTES = 15.0


def _env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    # make run uses the default driver memory, not the scoring benchmark's bigger one.
    for name in ("LOCAL_SPARK_DRIVER_MEMORY", "LOCAL_SPARK_MAX_RESULT_SIZE"):
        env.pop(name, None)
    env.update(
        ECOM_LOCAL_DIR=str(state),
        ECOM_WORKSPACE_PORT=str(free_port()),
        ECOM_MLFLOW_PORT=str(free_port()),
        ECOM_AZURITE_PORT=str(free_port()),
        ECOM_AIRFLOW_PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")]),
    )
    return env


def _one_run(state: Path) -> dict:
    shutil.rmtree(state, ignore_errors=True)
    state.parent.mkdir(parents=True, exist_ok=True)
    env = _env(state)
    log_path = state.parent / f"{state.name}.log"
    try:
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "local.story"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for line in process.stdout:
                log.write(line)
                if "stage '" in line or "error" in line:
                    print(f"  {line.rstrip()}", flush=True)
            code = process.wait()
    finally:
        subprocess.run(
            [sys.executable, "-m", "local.stack", "down"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=600,
        )
    if code != 0:
        raise RuntimeError(f"make run failed (exit {code}); its output is in {log_path}")
    return json.loads((state / "run_stages.json").read_text())


UNITS = {
    "lift_capture": "of the oracle's lift",
    "als_precision_at_10": "precision@10",
    "popularity_precision_at_10": "precision@10",
    "category_popularity_precision_at_10": "precision@10",
    "ceiling_precision_at_10": "precision@10",
    "ceiling_capture": "of the ceiling's gain over popularity",
    "champion_calibration_error": "ECE",
}


def run(repeats: int = 1) -> tuple[list, list[Figure], list[Target]]:
    # One run takes minutes: repeats beyond 2 are not worth the machine time.
    runs = [_one_run(ROOT / ".local" / "bench" / f"system-run-{i}") for i in range(min(repeats, 2))]
    total = Figure("make run, total (after set-up)", "min", [r["total"] / 60 for r in runs])
    stages = [
        Figure(f"make run stage: {name}", "min", [r["stages"][name] / 60 for r in runs])
        for name in runs[0]["stages"]
    ]
    target = Target(
        "6. system run",
        total,
        BUDGET_MINUTES,
        notes=f"{runs[0]['days']} days generated; load average over the last 15 min "
        f"{os.getloadavg()[2]:.1f} on {os.cpu_count()} cores; stages in the figures below",
    )
    # The model quality bars the same run measured (issue: lift capture >= 0.9; champion above
    # recency; ALS above popularity on precision@10), recorded with the time they took.
    quality = [
        Figure(
            f"make run quality: {name}",
            UNITS.get(name, "ROC AUC"),
            [r["quality"][name] for r in runs],
        )
        for name in runs[0].get("quality", {})
        if all(name in r.get("quality", {}) for r in runs)
    ]
    return [], [total, *stages, *quality], [target]
