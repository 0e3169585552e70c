"""Benchmark 5: DAG parse time against the floor of importing Airflow and the providers.

Each sample is a fresh interpreter (as a DAG processor's parsing subprocess is): it imports
``airflow.sdk`` and the operators/sensors the DAGs use (the floor), then executes one DAG file
(or all of them) and reports both times and which heavy libraries ended up imported. Target:
each DAG file adds less than 50% to the floor, and no heavy library is imported at parse time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import Comparison, Figure

ROOT = Path(__file__).resolve().parent.parent
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ("pyspark", "pandas", "sklearn", "mlflow", "great_expectations", "evidently")

_PROBE = r"""
import json, runpy, sys, time
t0 = time.perf_counter()
import airflow.sdk
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.providers.standard.operators.empty import EmptyOperator
floor = time.perf_counter() - t0
t1 = time.perf_counter()
for path in sys.argv[1:]:
    runpy.run_path(path)
parse = time.perf_counter() - t1
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print(json.dumps({"floor": floor, "parse": parse, "heavy": heavy}))
"""


def _sample(files: list[Path]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")])
    env.setdefault("AIRFLOW_HOME", str(ROOT / ".local" / "bench" / "airflow-home"))
    probe = f"HEAVY = {HEAVY!r}\n{_PROBE}"
    out = subprocess.run(
        [sys.executable, "-c", probe, *map(str, files)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(repeats: int = 5) -> tuple[list[Comparison], list[Figure]]:
    comparisons, figures = [], []
    floor = Figure("import floor: airflow.sdk + providers", "s")
    heavy_seen: set[str] = set()
    targets = [(p.stem, [p]) for p in DAG_FILES] + [("all six DAG files", DAG_FILES)]
    added = {name: Figure(f"parse {name} (after the floor)", "s") for name, _ in targets}
    for i in range(repeats):
        for name, files in targets:
            sample = _sample(files)
            floor.samples.append(sample["floor"])
            added[name].samples.append(sample["parse"])
            heavy_seen.update(sample["heavy"])
        print(f"  round {i + 1}/{repeats} done", flush=True)
    audit = "heavy imports at parse: " + (", ".join(sorted(heavy_seen)) or "none")
    for name, _ in targets:
        per_file = name != "all six DAG files"
        ratio = added[name].median / floor.median
        comparisons.append(
            Comparison(
                benchmark="5. DAG parsing",
                description=f"{name}: parse time / import floor",
                numerator=added[name],
                denominator=floor,
                target="< 0.5x per file" if per_file else "-",
                meets_target=(ratio < 0.5) if per_file else None,
                notes=audit,
            )
        )
    figures += [floor, *added.values()]
    return comparisons, figures
