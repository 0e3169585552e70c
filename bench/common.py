"""Shared helpers of the benchmarks: timing statistics, the results table and the local
SparkSession the Spark benchmarks run in."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# Every benchmark's latest rows, so `make bench ARGS="--only X"` updates X and keeps the rest.
RESULTS_JSON = Path(__file__).resolve().parent / "results.json"


@dataclass
class Figure:
    """One measured figure: repeated samples, reported as median (min..max)."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def cell(self) -> str:
        return (
            f"{_number(self.median)} {self.unit} "
            f"({_number(min(self.samples))}..{_number(max(self.samples))}, n={len(self.samples)})"
        )


def _number(value: float) -> str:
    """Two decimals, or three significant digits below 1 (a 0.0123 s parse is not 0.01 s)."""
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


@dataclass
class Comparison:
    """A ratio of two figures measured in the same run, with its target."""

    benchmark: str
    description: str
    numerator: Figure
    denominator: Figure
    target: str
    meets_target: bool | None = None
    notes: str = ""

    @property
    def ratio(self) -> float:
        return self.numerator.median / self.denominator.median


@dataclass
class Target:
    """A figure against an absolute budget (a wall-clock target, not a ratio)."""

    benchmark: str
    figure: Figure
    limit: float  # in the figure's unit; the target is "below the limit"
    notes: str = ""

    @property
    def meets_target(self) -> bool:
        return self.figure.median < self.limit


def local_session(state: Path):
    """The local SparkSession with Delta that the jobs run in, its warehouse under ``state``."""
    from local.spark.runtime import LocalLayout, build_session

    return build_session(LocalLayout(state=state))


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    memory = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {cores} cores, {memory}, {platform.system()} {platform.release()}"


def versions(packages: tuple[str, ...]) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _rows(comparisons: list[Comparison], figures: list[Figure], targets=()) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for c in comparisons:
        verdict = {True: "yes", False: "no", None: "-"}[c.meets_target]
        rows.append(
            f"| {c.benchmark}: {c.description} | {_ratio(c.ratio)} | {c.target} | {verdict} | "
            f"{c.numerator.name}: {c.numerator.cell()} | "
            f"{c.denominator.name}: {c.denominator.cell()} | {c.notes} |"
        )
    return {
        "measured": now,
        "comparisons": rows,
        "targets": [
            f"| {t.benchmark}: {t.figure.name} | {t.figure.cell()} | "
            f"< {t.limit:g} {t.figure.unit} | {'yes' if t.meets_target else 'no'} | {t.notes} |"
            for t in targets
        ],
        "figures": [f"| {f.name} | {f.cell()} | {now} |" for f in figures],
    }


def _ratio(value: float) -> str:
    """A ratio to one decimal, or two significant digits below 0.1 (0.007x, not 0.0x)."""
    return f"{value:.1f}x" if value >= 0.1 else f"{value:.2g}x"


def write_results(results: dict[str, tuple]) -> Path:
    """Merge this run's benchmarks into results.json and rewrite RESULTS.md from it."""
    stored = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    stored.update({name: _rows(*result) for name, result in results.items()})
    RESULTS_JSON.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/results.json` keeps each benchmark's latest run).",
        "Benchmarks are not tests: nothing fails on a number. Medians with (min..max, n) over",
        "repeated runs; every ratio compares two figures measured side by side in the same run.",
        "Profiling notes, with figures before and after each change: "
        "[docs/performance.md](../docs/performance.md).",
        "",
        f"- machine: {machine_description()}",
        f"- python {platform.python_version()}; "
        + versions(("pyspark", "delta-spark", "apache-airflow", "mlflow")),
        "",
        "## Comparisons",
        "",
        "| benchmark | ratio | target | meets target | numerator | denominator | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(stored):
        lines += stored[name]["comparisons"]
    lines += [
        "",
        "## Figures against a budget",
        "",
        "| benchmark: figure | value | target | meets target | notes |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(stored):
        lines += stored[name].get("targets", [])
    lines += ["", "## Figures", "", "| figure | value | measured |", "|---|---|---|"]
    for name in sorted(stored):
        lines += stored[name]["figures"]
    RESULTS.write_text("\n".join(lines) + "\n")
    return RESULTS
