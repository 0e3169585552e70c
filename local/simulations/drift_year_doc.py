"""``python -m local.simulations.drift_year_doc``: regenerate ``docs/drift_year.md``.

Runs the simulated year of ``local/simulations/drift_year.py`` (the one
``tests/local/simulations/test_drift_year.py`` asserts) in a throw-away local Spark warehouse and
MLflow store, and writes the per-month drift shares, drifted columns, statuses and the confusion
table at the configured ``drift_share``. A few minutes on two cores.

    python -m local.simulations.drift_year_doc [--output docs/drift_year.md] [--seed 42]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# As a spark_python_task imports them: the job modules, and the environment config. Set before
# the simulation is imported, which is why this command is a module of its own.
for folder in ("spark_jobs", "include"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.simulations.drift_year_doc", description=__doc__
    )
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "drift_year.md")
    parser.add_argument("--seed", type=int, default=42, help="the generator's seed")
    args = parser.parse_args(argv)

    import mlflow

    from local.simulations.drift_year import (
        THRESHOLD,
        YearConfig,
        confusion,
        confusion_lines,
        markdown,
        simulate,
    )
    from local.spark.runtime import LocalLayout, build_session

    config = YearConfig(threshold=THRESHOLD, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="drift-year-") as tmp:
        workdir = Path(tmp)
        spark = build_session(LocalLayout(state=workdir / "state"))
        mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
        names = {"schema": "drift_year", "experiment": "/drift-year", "model": "propensity"}
        mlflow.create_experiment(names["experiment"], artifact_location=str(workdir / "art"))
        started = time.monotonic()
        try:
            results = simulate(spark, config, workdir, names)
        finally:
            spark.stop()
        seconds = time.monotonic() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(markdown(config, results, seconds), encoding="utf-8")
    print("\n".join(confusion_lines(confusion(results))))
    print(f"wrote {args.output} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
