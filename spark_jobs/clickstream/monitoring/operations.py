"""The operations report: how the pipelines' Databricks runs went, from ``monitoring.job_runs``.

For the runs that started in a window (``[end - days, end)``): runs, failures and retries per
job (a job is a DAG's task; a retry is one more run of the same task and logical date), the
phases' medians, the duration trend per job with the growing ones flagged, and the estimated
cost by DAG and by logical date, and of one day of the daily chain at 1x and at a larger volume.

**The trend rule** (:func:`duration_trend`). A job's successful runs, oldest first: the median
execution time of its last ``runs`` runs against the median of the ``runs`` before them. The
job is *growing* when the ratio is at least ``ratio`` and the median grew by at least
``min_seconds``. Medians, so that a single slow run (a retry on a cold cluster, a noisy
neighbour) flags nothing; two windows, so that a job that stepped up once and stayed there is
flagged until both windows hold the new level; the least-squares slope over both windows (seconds
per run) ranks them. Fewer than twice ``runs`` successful runs: ``insufficient_runs``.

**A day of the daily chain** (:func:`chain_day_cost`). For one logical date, each task of the
chain's DAGs priced once, on its successful run: its hourly price over its billed hours, where
the execution is multiplied by the volume factor (linear in volume: conservative for the jobs
whose time is mostly fixed overhead) and the setup is measured or, with ``setup_seconds``, a
given cluster start (locally a warm driver starts in seconds, a job cluster in minutes).
Retries are counted apart.

Outputs: ``<output>.html`` (self-contained: inline CSS and SVG, nothing fetched) and
``<output>.json`` (the summary).
"""

from __future__ import annotations

import html
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from clickstream.core.contracts import JOB_RUNS
from clickstream.core.jobs import JobError
from clickstream.core.volumes import local_path
from clickstream.monitoring.job_runs import FAILED_STATES

GROWING, STEADY, INSUFFICIENT = "growing", "steady", "insufficient_runs"
# The daily chain: one logical date's data through bronze, features, online table and scores.
DAILY_CHAIN = (
    "data_quality_validation",
    "offline_feature_table",
    "online_feature_table",
    "model_serving",
)


@dataclass(frozen=True)
class TrendRule:
    """Flag a job whose median execution time grew by ``ratio`` (and ``min_seconds``) from
    one window of ``runs`` successful runs to the next."""

    runs: int = 7
    ratio: float = 1.3
    min_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.runs < 2:
            raise ValueError(f"--trend-runs must be at least 2, got {self.runs}")
        if self.ratio <= 1.0:
            raise ValueError(f"--trend-ratio must be above 1, got {self.ratio}")
        if self.min_seconds < 0:
            raise ValueError(f"--trend-min-seconds must be at least 0, got {self.min_seconds}")


def slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (units per step)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    spread = sum((i - mean_x) ** 2 for i in range(n))
    return sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / spread


def duration_trend(durations: list[float], rule: TrendRule) -> dict[str, Any]:
    """The trend of a job's execution seconds (successful runs, oldest first)."""
    k = rule.runs
    if len(durations) < 2 * k:
        return {
            "status": INSUFFICIENT,
            "runs": len(durations),
            "needed": 2 * k,
            "previous_median": None,
            "recent_median": None,
            "ratio": None,
            "slope_seconds_per_run": None,
        }
    previous, recent = durations[-2 * k : -k], durations[-k:]
    before, now = statistics.median(previous), statistics.median(recent)
    ratio = now / before if before > 0 else (float("inf") if now > 0 else 1.0)
    growing = ratio >= rule.ratio and now - before >= rule.min_seconds
    return {
        "status": GROWING if growing else STEADY,
        "runs": len(durations),
        "needed": 2 * k,
        "previous_median": before,
        "recent_median": now,
        "ratio": ratio,
        "slope_seconds_per_run": slope(durations[-2 * k :]),
    }


# -- aggregation (plain rows: the window's runs are a few thousand at most) ---------------------


def failed(row: dict) -> bool:
    return row["result_state"] in FAILED_STATES or row["life_cycle_state"] == "INTERNAL_ERROR"


def succeeded(row: dict) -> bool:
    return row["result_state"] == "SUCCESS"


def _cost(rows: list[dict], key: str = "estimated_cost_usd") -> float:
    return sum(r[key] for r in rows if r[key] is not None)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def job_stats(rows: list[dict], rule: TrendRule) -> list[dict[str, Any]]:
    """One entry per job (DAG, task): runs, failures, retries, phases, cost and trend; the
    growing jobs first (fastest-growing first), then by DAG and task."""
    by_job: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_job[(row["dag_id"], row["task_id"])].append(row)
    jobs = []
    for (dag_id, task_id), runs in by_job.items():
        runs.sort(key=lambda r: (r["start_time"], r["run_id"]))
        ok = [r for r in runs if succeeded(r)]
        dates = {r["logical_date"] for r in runs}
        jobs.append(
            {
                "dag_id": dag_id,
                "task_id": task_id,
                "runs": len(runs),
                "succeeded": len(ok),
                "failed": sum(failed(r) for r in runs),
                "in_flight": sum(r["end_time"] is None for r in runs),
                "retries": len(runs) - len(dates),
                "median_queue_seconds": _median([r["queue_seconds"] for r in ok]),
                "median_setup_seconds": _median([r["setup_seconds"] for r in ok]),
                "median_execution_seconds": _median([r["execution_seconds"] for r in ok]),
                "execution_seconds": sum(r["execution_seconds"] for r in runs),
                "estimated_cost_usd": _cost(runs),
                "trend": duration_trend([r["execution_seconds"] for r in ok], rule),
                "recent_execution_seconds": [r["execution_seconds"] for r in ok][-2 * rule.runs :],
            }
        )
    jobs.sort(key=lambda j: (j["dag_id"], j["task_id"]))
    jobs.sort(
        key=lambda j: (
            j["trend"]["status"] != GROWING,
            -(j["trend"]["slope_seconds_per_run"] or 0.0),
        )
    )
    return jobs


def cost_by_dag_and_day(rows: list[dict]) -> dict[str, dict[str, float]]:
    """{logical date: {DAG: estimated cost}} of every run (retries and failures included)."""
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        if row["estimated_cost_usd"] is not None:
            table[row["logical_date"].isoformat()][row["dag_id"]] += row["estimated_cost_usd"]
    return {day: dict(dags) for day, dags in sorted(table.items())}


def _billed_hours(row: dict, scale: float, setup_seconds: float | None) -> float:
    setup = row["setup_seconds"] if setup_seconds is None else setup_seconds
    cleanup = row["cleanup_seconds"] if row["compute_kind"] != "serverless" else 0.0
    return (setup + cleanup + row["execution_seconds"] * scale) / 3600


def chain_day(rows: list[dict], dags: tuple[str, ...] = DAILY_CHAIN) -> str | None:
    """The logical date the chain ran most completely (the most chain DAGs with a successful
    run), the latest of those; None when no chain DAG succeeded."""
    done: dict[date, set[str]] = defaultdict(set)
    for row in rows:
        if row["dag_id"] in dags and succeeded(row):
            done[row["logical_date"]].add(row["dag_id"])
    if not done:
        return None
    return max(done, key=lambda day: (len(done[day]), day)).isoformat()


def chain_day_cost(
    rows: list[dict],
    *,
    ds: str | None = None,
    dags: tuple[str, ...] = DAILY_CHAIN,
    scales: tuple[float, ...] = (1.0,),
    setup_seconds: float | None = None,
) -> dict[str, Any] | None:
    """What one logical date of the daily chain costs at each volume factor of ``scales``
    (see the module docstring); None when the chain has no successful run, or no run on
    ``ds``."""
    ds = ds or chain_day(rows, dags)
    if ds is None:
        return None
    day = date.fromisoformat(ds)
    of_day = [r for r in rows if r["dag_id"] in dags and r["logical_date"] == day]
    if not of_day:
        return None
    tasks: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in sorted(of_day, key=lambda r: (r["start_time"], r["run_id"])):
        tasks[(row["dag_id"], row["task_id"])].append(row)
    priced, extra = [], []
    for runs in tasks.values():
        ok = [r for r in runs if succeeded(r)]
        chosen = ok[-1] if ok else runs[-1]
        priced.append(chosen)
        extra += [r for r in runs if r is not chosen]
    unpriced = sorted(f"{r['dag_id']}.{r['task_id']}" for r in priced if r["usd_per_hour"] is None)
    at = {}
    for scale in scales:
        at[f"{scale:g}"] = {
            "scale": scale,
            "execution_seconds": sum(r["execution_seconds"] * scale for r in priced),
            "billed_seconds": sum(_billed_hours(r, scale, setup_seconds) * 3600 for r in priced),
            "cost_usd": sum(
                r["usd_per_hour"] * _billed_hours(r, scale, setup_seconds)
                for r in priced
                if r["usd_per_hour"] is not None
            ),
            "cost_max_usd": sum(
                r["usd_per_hour_max"] * _billed_hours(r, scale, setup_seconds)
                for r in priced
                if r["usd_per_hour_max"] is not None
            ),
        }
    return {
        "logical_date": ds,
        "dags": sorted({r["dag_id"] for r in priced}),
        "missing_dags": [d for d in dags if d not in {r["dag_id"] for r in priced}],
        "tasks": len(priced),
        "failed_tasks": sorted(f"{r['dag_id']}.{r['task_id']}" for r in priced if not succeeded(r)),
        "unpriced_tasks": unpriced,
        "setup_seconds_assumed": setup_seconds,
        "price_basis": sorted({r["price_basis"] for r in priced}),
        "at": at,
        "retries": len(extra),
        "retries_cost_usd": _cost(extra),
    }


# -- the job -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportConfig:
    """One report: the runs that started in ``[end - days, end)``."""

    ds: str
    end: datetime
    days: int
    catalog: str
    output: str  # path without extension
    monitoring_schema: str = "monitoring"
    rule: TrendRule = TrendRule()
    chain_dags: tuple[str, ...] = DAILY_CHAIN
    scale: float = 16.0

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"--days must be at least 1, got {self.days}")
        if self.scale <= 0:
            raise ValueError(f"--scale must be positive, got {self.scale}")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


def _aware(value: Any) -> Any:
    """A collected timestamp as an aware UTC datetime: PySpark hands timestamps back naive, in
    the Python process's local time."""
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def load_rows(spark, config: ReportConfig) -> list[dict]:
    """The window's rows of ``monitoring.job_runs`` as dicts (timestamps aware, UTC)."""
    from pyspark.sql import functions as F

    name = JOB_RUNS.name(config.catalog, config.monitoring_schema)
    if not spark.catalog.tableExists(name):
        raise JobError(f"{name} does not exist: run collect_job_runs (the DAG's task) first")
    start, end = (F.lit(m.astimezone(UTC)) for m in (config.start, config.end))
    return read_rows(
        spark.table(name).where((F.col("start_time") >= start) & (F.col("start_time") < end))
    )


def read_rows(frame) -> list[dict]:
    """Rows of a ``monitoring.job_runs`` frame as dicts, timestamps aware (UTC)."""
    return [
        {k: _aware(v) for k, v in row.asDict().items()}
        for row in frame.select(*JOB_RUNS.names).collect()
    ]


def summarise(rows: list[dict], config: ReportConfig) -> dict[str, Any]:
    """The report's figures (what ``<output>.json`` holds)."""
    jobs = job_stats(rows, config.rule)
    failures = sorted(
        (r for r in rows if failed(r)), key=lambda r: (r["start_time"], r["run_id"]), reverse=True
    )
    return {
        "logical_date": config.ds,
        "window": {"start": config.start.isoformat(), "end": config.end.isoformat()},
        "runs": len(rows),
        "succeeded": sum(succeeded(r) for r in rows),
        "failed": len(failures),
        "in_flight": sum(r["end_time"] is None for r in rows),
        "retries": sum(j["retries"] for j in jobs),
        "execution_seconds": sum(r["execution_seconds"] for r in rows),
        "estimated_cost_usd": _cost(rows),
        "estimated_cost_max_usd": _cost(rows, "estimated_cost_max_usd"),
        "unpriced_runs": sum(r["estimated_cost_usd"] is None for r in rows),
        "price_tables": sorted({r["price_table"] for r in rows if r["price_table"]}),
        "price_basis": sorted({r["price_basis"] for r in rows}),
        "trend_rule": {
            "runs": config.rule.runs,
            "ratio": config.rule.ratio,
            "min_seconds": config.rule.min_seconds,
        },
        "growing": [
            f"{j['dag_id']}.{j['task_id']}" for j in jobs if j["trend"]["status"] == GROWING
        ],
        "jobs": jobs,
        "failures": [
            {
                "run_id": r["run_id"],
                "dag_id": r["dag_id"],
                "task_id": r["task_id"],
                "logical_date": r["logical_date"].isoformat(),
                "start_time": r["start_time"].isoformat(),
                "state": r["result_state"] or r["life_cycle_state"],
                "message": r["state_message"],
                "run_page_url": r["run_page_url"],
            }
            for r in failures
        ],
        "cost_by_day": cost_by_dag_and_day(rows),
        "daily_chain": chain_day_cost(rows, dags=config.chain_dags, scales=(1.0, config.scale)),
        "report": config.output + ".html",
    }


_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
    "margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
    "td{white-space:nowrap}th{background:#f4f4f4}td.l,th.l{text-align:left}"
    ".growing{color:#b00020;font-weight:bold}.steady{color:#1b5e20}"
    ".insufficient_runs{color:#8a6d00}.failed{color:#b00020}"
)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _money(value: float | None) -> str:
    return "&ndash;" if value is None else f"${value:,.2f}"


def _sparkline(values: list[float]) -> str:
    """An inline SVG polyline of execution seconds (oldest left)."""
    if len(values) < 2:
        return ""
    width, height, pad = 120, 28, 2
    top = max(values) or 1.0
    step = (width - 2 * pad) / (len(values) - 1)
    points = " ".join(
        f"{pad + i * step:.1f},{height - pad - v / top * (height - 2 * pad):.1f}"
        for i, v in enumerate(values)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="execution seconds, oldest first">'
        f'<polyline points="{points}" fill="none" stroke="#1565c0" stroke-width="1.5"/></svg>'
    )


def _row(cells: list[str], classes: dict[int, str] | None = None) -> str:
    classes = classes or {}
    return (
        "<tr>"
        + "".join(
            f'<td class="{classes[i]}">{c}</td>' if i in classes else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        + "</tr>"
    )


def _head(labels: list[str], left: int = 0) -> str:
    return (
        "<tr>"
        + "".join(
            f'<th class="l">{html.escape(x)}</th>' if i < left else f"<th>{html.escape(x)}</th>"
            for i, x in enumerate(labels)
        )
        + "</tr>"
    )


def render_html(summary: dict[str, Any]) -> str:
    """The page: totals, jobs, the trend, failures, cost by DAG and day, the chain's day."""
    rule = summary["trend_rule"]
    title = f"Pipeline operations, {summary['window']['start'][:10]} .. {summary['window']['end']}"
    jobs = summary["jobs"]
    job_rows = "".join(
        _row(
            [
                html.escape(j["dag_id"]),
                html.escape(j["task_id"]),
                str(j["runs"]),
                str(j["failed"]),
                str(j["retries"]),
                _fmt(j["median_queue_seconds"]),
                _fmt(j["median_setup_seconds"]),
                _fmt(j["median_execution_seconds"]),
                _fmt(j["execution_seconds"] / 60),
                _money(j["estimated_cost_usd"]),
            ],
            {0: "l", 1: "l", 3: "failed" if j["failed"] else ""},
        )
        for j in sorted(jobs, key=lambda j: (j["dag_id"], j["task_id"]))
    )
    trend_rows = "".join(
        _row(
            [
                html.escape(f"{j['dag_id']}.{j['task_id']}"),
                html.escape(j["trend"]["status"]),
                f"{j['trend']['runs']} / {j['trend']['needed']}",
                _fmt(j["trend"]["previous_median"]),
                _fmt(j["trend"]["recent_median"]),
                _fmt(j["trend"]["ratio"], 2),
                _fmt(j["trend"]["slope_seconds_per_run"], 2),
                _sparkline(j["recent_execution_seconds"]),
            ],
            {0: "l", 1: j["trend"]["status"]},
        )
        for j in jobs
    )
    failure_rows = "".join(
        _row(
            [
                html.escape(f["start_time"][:19]),
                html.escape(f"{f['dag_id']}.{f['task_id']}"),
                html.escape(f["logical_date"]),
                html.escape(f["state"]),
                html.escape((f["message"] or "")[:200]),
                f'<a href="{html.escape(f["run_page_url"])}">run {f["run_id"]}</a>'
                if f["run_page_url"]
                else str(f["run_id"]),
            ],
            {0: "l", 1: "l", 3: "failed", 4: "l"},
        )
        for f in summary["failures"]
    )
    dags = sorted({d for by_dag in summary["cost_by_day"].values() for d in by_dag})
    cost_rows = "".join(
        _row(
            [html.escape(day)]
            + [_money(by_dag.get(d)) if d in by_dag else "&ndash;" for d in dags]
            + [_money(sum(by_dag.values()))],
            {0: "l"},
        )
        for day, by_dag in summary["cost_by_day"].items()
    )
    totals = {d: sum(v.get(d, 0.0) for v in summary["cost_by_day"].values()) for d in dags}
    cost_rows += _row(
        ["all days"] + [_money(totals[d]) for d in dags] + [_money(sum(totals.values()))], {0: "l"}
    )
    chain = summary["daily_chain"]
    if chain:
        chain_rows = "".join(
            _row(
                [
                    f"{figures['scale']:g}x",
                    _fmt(figures["execution_seconds"] / 60),
                    _fmt(figures["billed_seconds"] / 60),
                    _money(figures["cost_usd"]),
                    _money(figures["cost_max_usd"]),
                ]
            )
            for figures in chain["at"].values()
        )
        chain_html = (
            f"<p>Logical date {html.escape(chain['logical_date'])}: {chain['tasks']} tasks of "
            f"{html.escape(', '.join(chain['dags']))}, each priced once on its successful run "
            f"(retries apart: {chain['retries']} runs, {_money(chain['retries_cost_usd'])}); "
            "execution time multiplied by the volume factor, setup as measured.</p>"
            f"<table>{_head(['volume', 'execution min', 'billed min', 'cost', 'cost at max size'])}"
            f"{chain_rows}</table>"
        )
    else:
        chain_html = "<p>No successful run of the daily chain in the window.</p>"
    priced = "; ".join(summary["price_basis"]) or "none"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f"<p>{summary['runs']} runs ({summary['succeeded']} succeeded, "
        f'<span class="failed">{summary["failed"]} failed</span>, {summary["in_flight"]} in '
        f"flight, {summary['retries']} retries), {summary['execution_seconds'] / 3600:.2f} h "
        f"of execution, estimated {_money(summary['estimated_cost_usd'])} "
        f"({_money(summary['estimated_cost_max_usd'])} at the clusters' maximum size; "
        f"{summary['unpriced_runs']} runs without a price). Price table: "
        f"{html.escape(', '.join(summary['price_tables']) or 'none')}; priced as: "
        f"{html.escape(priced)}.</p>\n"
        f"<h2>Runs per job</h2>\n<table>"
        + _head(
            [
                "DAG",
                "task",
                "runs",
                "failed",
                "retries",
                "queue s",
                "setup s",
                "execution s",
                "execution min (all)",
                "cost",
            ],
            left=2,
        )
        + f"{job_rows}</table>\n"
        "<p>Medians of the successful runs; a retry is a further run of the same task and "
        "logical date.</p>\n"
        "<h2>Duration trend</h2>\n"
        f"<p>Growing: the median execution time of the last {rule['runs']} successful runs is "
        f"at least {rule['ratio']:g} times that of the {rule['runs']} before them and "
        f"{rule['min_seconds']:g} s longer. Growing jobs first, fastest-growing first.</p>\n"
        "<table>"
        + _head(
            [
                "job",
                "trend",
                "runs / needed",
                "previous median s",
                "recent median s",
                "ratio",
                "slope s/run",
                "last runs",
            ],
            left=2,
        )
        + f"{trend_rows}</table>\n"
        f"<h2>Failures ({len(summary['failures'])})</h2>\n"
        + (
            "<table>"
            + _head(["started (UTC)", "job", "logical date", "state", "message", "run"], left=2)
            + f"{failure_rows}</table>\n"
            if summary["failures"]
            else "<p>None.</p>\n"
        )
        + "<h2>Estimated cost by logical date and DAG</h2>\n<table>"
        + _head(["logical date", *dags, "all DAGs"], left=1)
        + f"{cost_rows}</table>\n"
        "<h2>One day of the daily chain</h2>\n"
        f"{chain_html}\n</body>\n</html>\n"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def report_operations(spark, config: ReportConfig) -> dict[str, Any]:
    """Read the window's runs, write ``<output>.html`` and ``<output>.json``; the summary."""
    summary = summarise(load_rows(spark, config), config)
    for suffix, text in (
        (".html", render_html(summary)),
        (".json", json.dumps(summary, indent=2, default=_jsonable) + "\n"),
    ):
        path = Path(local_path(config.output + suffix))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return summary
