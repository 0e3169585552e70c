"""The drift thresholds, calibrated on graded drift and held out: recall and false alarms.

``python -m local.simulations.drift_calibration --run`` runs the study and stores its figures
in ``local/simulations/drift_calibration.json``; without ``--run`` the page
``docs/drift_calibration.md`` is written from the stored figures (``--check``: fail when the
page is not current, the shared command line of ``local/docs/generated.py``).
``tests/local/simulations/test_drift_calibration.py`` runs a reduced study and asserts the
held-out targets on it.

**What is compared.** As the monthly drift job does: a period's feature rows against the
champion's training window, both with mature 30-day windows. Per seed, the generator's world
(``build_world``) delivers a file a day from :data:`DATA_START`; the first
:data:`WARMUP_DAYS` days only fill the 30-day windows, so the reference is the
``LOCAL.train_days`` feature dates from the first mature date on (the earliest window a first
champion can be trained on). The periods are calendar months:

* stable months (no drift at all): :data:`STABLE_MONTHS`;
* drifted months: the generator's ``Drift(scenario, start, magnitude)`` from day
  :data:`DRIFT_DAY` of :data:`DRIFT_MONTH` (mid-month) on, for each scenario and graded
  magnitude; the *first check* is that month (half of its dates see the drift, their 30-day
  windows only partly), the *second check* the month after.

**Same computation as the job.** Events: ``generate_day`` (REES46 lines), read into DuckDB with
the ingest date of their file (what the ingest parser and silver's dedup give; a test checks the
features against Spark's). Features: the DuckDB reference of ``compute_features``
(``local/simulations/duckdb_features.py``, checked against Spark by its own test). Each side is
a seeded uniform sample of at most ``LOCAL.drift_max_rows`` rows (the job's bound), at least
``LOCAL.drift_min_rows``. The comparison is the job's own: ``compare`` of
``clickstream/monitoring/drift_report.py`` (Evidently 0.7, normed Wasserstein per column;
a column's threshold is at least its noise floor, the largest distance of ``NOISE_DRAWS``
relabellings of the pooled samples, which the cases store next to the distances).

**Selection and hold-out.** The per-column distances do not depend on the thresholds, so on the
selection seeds every pair (column threshold, drift share) of a grid is scored from the stored
distances; the chosen pair is the one with no false alarm on the selection's stable months with
a margin of :data:`MARGIN_COLUMNS` column(s), and the best recall at full magnitude, then over
every magnitude (ties: the column threshold nearest 0.1, then the higher share). The held-out
seeds never enter the choice; they are scored at the chosen pair by Evidently's rule
(``score >= column threshold``, ``drift share >= share``). Each seed runs on its own
(``--run --seeds N``, cached under ``.local/drift_calibration/``), ``--combine`` chooses and
scores.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# As a spark_python_task imports them: the job modules, and the environment config.
for _folder in ("spark_jobs", "include"):
    if str(ROOT / _folder) not in sys.path:
        sys.path.insert(0, str(ROOT / _folder))

from clickstream.core.contracts import FEATURE_COLUMNS  # noqa: E402
from clickstream.core.maturity import MATURITY_DAYS, mature_from  # noqa: E402
from clickstream.monitoring.drift_report import NOISE_DRAWS  # noqa: E402
from ecom_airflow.config import LOCAL  # noqa: E402

RESULTS = Path(__file__).resolve().with_suffix(".json")
CACHE = ROOT / ".local" / "drift_calibration"  # one file per seed run (not committed)
PAGE = ROOT / "docs" / "drift_calibration.md"

YEAR = 2019
DATA_START = date(YEAR, 1, 1)
WARMUP_DAYS = MATURITY_DAYS - 1  # the first mature feature date is DATA_START + 29
STABLE_MONTHS = (3, 5, 7, 8)
DRIFT_MONTH, DRIFT_DAY = 7, 16
SCENARIOS = ("price_shift", "category_mix", "behaviour_change")
MAGNITUDES = (0.5, 0.75, 1.0)
SELECTION_SEEDS = (11, 12, 13)
# 21..23 were the held-out seeds of the first round (a fifth of the volume); once looked at,
# they are not held out again.
HELD_OUT_SEEDS = (31, 32, 33)
COLUMN_THRESHOLDS = (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25)
MARGIN_COLUMNS = 1  # selection's noisiest stable month stays this many columns below the bar
TARGET_RECALL, TARGET_FALSE_ALARMS = 0.9, 0.05


@dataclass(frozen=True)
class StudyConfig:
    """The simulated traffic and what is checked (the study's and the test's)."""

    users: int = 3_000
    events_per_day: int = 20_000  # make run's weekday volume (weekends ~20% more)
    scenarios: tuple[str, ...] = SCENARIOS
    magnitudes: tuple[float, ...] = MAGNITUDES
    stable_months: tuple[int, ...] = STABLE_MONTHS
    second_check_magnitudes: tuple[float, ...] = (1.0,)
    drift_month: int = DRIFT_MONTH  # the drift starts on its day DRIFT_DAY
    max_rows: int = LOCAL.drift_max_rows
    min_rows: int = LOCAL.drift_min_rows
    train_days: int = LOCAL.train_days
    noise_draws: int = NOISE_DRAWS  # the per-column noise floor (compare's relabellings)

    @property
    def reference(self) -> tuple[date, date]:
        first = mature_from(DATA_START)
        return first, first + timedelta(days=self.train_days - 1)


@dataclass
class Case:
    """One comparison: a period of one seed against that seed's reference window."""

    seed: int
    scenario: str  # "none" for a stable month
    magnitude: float  # 0 for a stable month
    check: str  # "stable", "first" (the month the drift starts in) or "second"
    month: int
    rows: tuple[int, int]  # feature rows of the (reference, current) windows
    sampled: tuple[int, int]
    scores: dict[str, float | None]  # normed Wasserstein per feature (None: not testable)
    verdict: dict[str, Any] | None = None  # Evidently's at the thresholds it was run with
    floors: dict[str, float | None] | None = None  # each column's noise floor (compare's)

    @property
    def drifted(self) -> bool:
        return self.scenario != "none"


# -- events and features in DuckDB -------------------------------------------------------------

_EVENTS = (
    "user_id BIGINT, event_type VARCHAR, product_id BIGINT, category_id BIGINT, brand VARCHAR, "
    "user_session VARCHAR, price DECIMAL(12, 2), event_date DATE, ingest_date DATE"
)
_CSV_COLUMNS = (
    "{'event_time': 'VARCHAR', 'event_type': 'VARCHAR', 'product_id': 'BIGINT', "
    "'category_id': 'BIGINT', 'category_code': 'VARCHAR', 'brand': 'VARCHAR', "
    "'price': 'DECIMAL(12, 2)', 'user_id': 'BIGINT', 'user_session': 'VARCHAR'}"
)


def month_dates(month: int, start_day: int = 1, end_day: int | None = None) -> list[date]:
    first = date(YEAR, month, start_day)
    last = (date(YEAR, month % 12 + 1, 1) if month < 12 else date(YEAR + 1, 1, 1)) - timedelta(
        days=1
    )
    if end_day is not None:
        last = date(YEAR, month, end_day)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def load_days(con, table: str, world, seed: int, days: list[date], volume: int, drift, tmp):
    """Append ``days``' generated files to the DuckDB ``table`` as silver rows: the event date
    of ``event_time``, the ingest date of the file (its day), an empty brand as null."""
    from clickstream.sources.synthetic import generate_day, to_csv

    path = Path(tmp) / "day.csv"
    for day in days:
        path.write_bytes(to_csv(generate_day(world, seed, day, volume, drift)))
        con.execute(
            f"INSERT INTO {table} SELECT user_id, event_type, product_id, category_id, "
            "nullif(brand, ''), user_session, price, CAST(substr(event_time, 1, 10) AS DATE), "
            f"DATE '{day}' FROM read_csv('{path}', header = true, columns = {_CSV_COLUMNS})"
        )


def features(con, source: str, dates: list[date]):
    """The feature rows of ``dates`` from the silver rows of ``source`` (DuckDB reference)."""
    import pandas as pd

    from local.simulations.duckdb_features import feature_sql

    frames = [con.sql(feature_sql(source, d.isoformat())).df() for d in dates]
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True)
    frame[list(FEATURE_COLUMNS)] = frame[list(FEATURE_COLUMNS)].astype("float64")
    return frame


def bounded(frame, max_rows: int, seed: int):
    """At most ``max_rows`` rows, a seeded uniform sample (the job's bound on the driver)."""
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).reset_index(drop=True)


# -- one seed ----------------------------------------------------------------------------------


def simulate_seed(
    config: StudyConfig,
    seed: int,
    thresholds: tuple[float, float] = (0.1, 0.1),
    log=print,
) -> list[Case]:
    """Every comparison of one seed: its stable months, then each (scenario, magnitude)'s first
    (and, for ``second_check_magnitudes``, second) check; Evidently runs at ``thresholds``
    (column threshold, drift share), whose verdict is kept with the distances."""
    import duckdb

    from clickstream.monitoring.drift_report import compare
    from clickstream.sources.synthetic import Drift, build_world

    started = time.monotonic()
    column_threshold, share = thresholds
    world = build_world(seed, config.users)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE stable ({_EVENTS})")
    con.execute(f"CREATE TABLE drifted ({_EVENTS})")
    cases: list[Case] = []
    drift_start = date(YEAR, config.drift_month, DRIFT_DAY)
    checked = config.drift_month + (1 if config.second_check_magnitudes else 0)
    last_month = max([*config.stable_months, checked])
    stable_end = month_dates(last_month)[-1]
    with tempfile.TemporaryDirectory(prefix="drift-calibration-") as tmp:
        days = [DATA_START + timedelta(days=i) for i in range((stable_end - DATA_START).days + 1)]
        load_days(con, "stable", world, seed, days, config.events_per_day, Drift(), tmp)
        ref_start, ref_end = config.reference
        reference = features(con, "stable", _range(ref_start, ref_end))
        ref_sample = bounded(reference, config.max_rows, seed)

        def check(current, scenario, magnitude, kind, month) -> None:
            cur_sample = bounded(current, config.max_rows, seed * 100 + month)
            if min(len(reference), len(current)) < config.min_rows:
                raise RuntimeError(f"seed {seed} month {month}: fewer than min_rows rows")
            result = compare(
                ref_sample, cur_sample, share, scores=False, column_threshold=column_threshold
            )
            scores = {c: r["score"] for c, r in result.columns.items()}
            floors = {c: r.get("noise_floor") for c, r in result.columns.items()}
            verdict = {
                "column_threshold": column_threshold,
                "drift_share_threshold": share,
                "drift_share": result.drift_share,
                "drifted_columns": [c for c, r in result.columns.items() if r["drifted"]],
                "flagged": result.drift_share >= share,
            }
            cases.append(
                Case(
                    seed,
                    scenario,
                    magnitude,
                    kind,
                    month,
                    (len(reference), len(current)),
                    (len(ref_sample), len(cur_sample)),
                    scores,
                    verdict,
                    floors,
                )
            )

        before = features(con, "stable", month_dates(config.drift_month, 1, DRIFT_DAY - 1))
        for month in config.stable_months:
            if month == config.drift_month:
                after = features(con, "stable", month_dates(config.drift_month, DRIFT_DAY))
                current = _concat(before, after)
            else:
                current = features(con, "stable", month_dates(month))
            check(current, "none", 0.0, "stable", month)
        log(f"[seed {seed} {time.monotonic() - started:4.0f}s] stable months done")
        source = (
            f"(SELECT * FROM stable WHERE ingest_date < DATE '{drift_start}' "
            "UNION ALL SELECT * FROM drifted)"
        )
        for scenario in config.scenarios:
            for magnitude in config.magnitudes:
                second = magnitude in config.second_check_magnitudes
                end = month_dates(config.drift_month + 1 if second else config.drift_month)[-1]
                con.execute("DELETE FROM drifted")
                drift = Drift(scenario, drift_start, magnitude)
                load_days(
                    con,
                    "drifted",
                    world,
                    seed,
                    _range(drift_start, end),
                    config.events_per_day,
                    drift,
                    tmp,
                )
                after = features(con, source, month_dates(config.drift_month, DRIFT_DAY))
                check(_concat(before, after), scenario, magnitude, "first", config.drift_month)
                if second:
                    current = features(con, source, month_dates(config.drift_month + 1))
                    check(current, scenario, magnitude, "second", config.drift_month + 1)
            log(f"[seed {seed} {time.monotonic() - started:4.0f}s] {scenario} done")
    con.close()
    return cases


def _range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _concat(*frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


# -- decisions ---------------------------------------------------------------------------------


def drifted_count(case: Case, column_threshold: float) -> int:
    """Columns at or above ``max(column_threshold, their noise floor)``: compare's rule."""
    floors = case.floors or {}
    return sum(
        1
        for c, s in case.scores.items()
        if s is not None and s >= max(column_threshold, floors.get(c) or 0.0)
    )


def share_of(case: Case, column_threshold: float) -> float:
    """Evidently's drift share: drifted columns over the testable ones."""
    testable = sum(1 for s in case.scores.values() if s is not None)
    return drifted_count(case, column_threshold) / testable


def flagged(case: Case, column_threshold: float, share: float) -> bool:
    return share_of(case, column_threshold) >= share


def share_grid() -> list[float]:
    """Drift shares k/43 (rounded down to 3 decimals, so k columns of 43 reach them)."""
    n = len(FEATURE_COLUMNS)
    return [math.floor(k / n * 1000) / 1000 for k in range(1, 16)]


def rates(cases: list[Case], decide) -> dict[str, Any]:
    """Recall per (check, scenario, magnitude) and false alarms of the stable months."""
    table: dict[str, Any] = {"false_alarms": None, "recall": {}}
    stable = [c for c in cases if not c.drifted]
    if stable:
        alarms = sum(decide(c) for c in stable)
        table["false_alarms"] = {"flagged": alarms, "months": len(stable)}
    groups: dict[tuple[str, str, float], list[bool]] = {}
    for c in cases:
        if c.drifted:
            groups.setdefault((c.check, c.scenario, c.magnitude), []).append(decide(c))
    for (check, scenario, magnitude), hits in sorted(groups.items()):
        key = f"{check}|{scenario}|{magnitude}"
        table["recall"][key] = {"flagged": sum(hits), "months": len(hits)}
    return table


def choose(cases: list[Case]) -> dict[str, Any]:
    """The (column threshold, drift share) of the selection seeds (see the module's doc)."""
    n = len(FEATURE_COLUMNS)
    stable = [c for c in cases if not c.drifted]
    full = [c for c in cases if c.drifted and c.check == "first" and c.magnitude == 1.0]
    drifted = [c for c in cases if c.drifted and c.check == "first"]
    best, candidates = None, []
    for t in COLUMN_THRESHOLDS:
        noisiest = max(drifted_count(c, t) for c in stable)
        for s in share_grid():
            needed = math.ceil(s * n - 1e-9)
            if noisiest > needed - 1 - MARGIN_COLUMNS:
                continue
            recall_full = sum(flagged(c, t, s) for c in full) / len(full)
            recall_all = sum(flagged(c, t, s) for c in drifted) / len(drifted)
            key = (recall_full, recall_all, -abs(t - 0.1), s)
            candidates.append({"column_threshold": t, "drift_share": s, "key": key})
            if best is None or key > best["key"]:
                best = {
                    "column_threshold": t,
                    "drift_share": s,
                    "key": key,
                    "columns_needed": needed,
                    "noisiest_stable": noisiest,
                    "recall_full": recall_full,
                    "recall_all": recall_all,
                }
    if best is None:
        raise RuntimeError("no threshold pair keeps the selection's stable months quiet")
    best.pop("key")
    best["pairs_tried"] = len(COLUMN_THRESHOLDS) * len(share_grid())
    best["pairs_quiet"] = len(candidates)
    return best


# -- the study ---------------------------------------------------------------------------------


@dataclass
class Study:
    config: StudyConfig
    selection_seeds: tuple[int, ...]
    held_out_seeds: tuple[int, ...]
    selection: list[Case] = field(default_factory=list)
    held_out: list[Case] = field(default_factory=list)
    chosen: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def run_seed(config: StudyConfig, seed: int, log=print) -> Path:
    """One seed's comparisons into the cache (``CACHE/seed-<n>.json``); returns the file."""
    started = time.monotonic()
    cases = simulate_seed(config, seed, log=log)
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"seed-{seed}.json"
    data = {
        "config": asdict(config),
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
        "cases": [asdict(c) for c in cases],
    }
    path.write_text(json.dumps(data) + "\n", encoding="utf-8")
    return path


def combine(
    selection_seeds: tuple[int, ...] = SELECTION_SEEDS,
    held_out_seeds: tuple[int, ...] = HELD_OUT_SEEDS,
) -> Study:
    """The study from the cached seeds: the choice on the selection seeds only, then the
    held-out seeds scored at the chosen thresholds."""
    study, config = None, None
    seconds = {"selection": 0.0, "held_out": 0.0}
    parts: dict[str, list[Case]] = {"selection": [], "held_out": []}
    for split, seeds in (("selection", selection_seeds), ("held_out", held_out_seeds)):
        for seed in seeds:
            data = json.loads((CACHE / f"seed-{seed}.json").read_text(encoding="utf-8"))
            if config is None:
                config = data["config"]
            elif data["config"] != config:
                raise RuntimeError(f"seed {seed} was run with another configuration")
            parts[split] += _cases(data["cases"])
            seconds[split] += data["seconds"]
    study = Study(
        _config(config),
        tuple(selection_seeds),
        tuple(held_out_seeds),
        parts["selection"],
        parts["held_out"],
        seconds={k: round(v, 1) for k, v in seconds.items()},
    )
    study.chosen = choose(study.selection)
    return study


def held_out_rates(study: Study) -> dict[str, Any]:
    """The held-out table at the chosen thresholds, from Evidently's distances (a column has
    drifted at ``score >= threshold``, the month at ``share >= drift_share``: Evidently's rule,
    which ``tests/local/simulations/test_drift_calibration.py`` checks against its verdict)."""
    t, s = study.chosen["column_threshold"], study.chosen["drift_share"]
    return rates(study.held_out, lambda c: flagged(c, t, s))


def selection_rates(study: Study) -> dict[str, Any]:
    t, s = study.chosen["column_threshold"], study.chosen["drift_share"]
    return rates(study.selection, lambda c: flagged(c, t, s))


def _config(data: dict[str, Any]) -> StudyConfig:
    return StudyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _cases(rows: list[dict[str, Any]]) -> list[Case]:
    return [Case(**{**r, "rows": tuple(r["rows"]), "sampled": tuple(r["sampled"])}) for r in rows]


def to_json(study: Study) -> dict[str, Any]:
    return {
        "config": asdict(study.config),
        "selection_seeds": list(study.selection_seeds),
        "held_out_seeds": list(study.held_out_seeds),
        "chosen": study.chosen,
        "seconds": study.seconds,
        "selection": [asdict(c) for c in study.selection],
        "held_out": [asdict(c) for c in study.held_out],
    }


def from_json(data: dict[str, Any]) -> Study:
    return Study(
        _config(data["config"]),
        tuple(data["selection_seeds"]),
        tuple(data["held_out_seeds"]),
        _cases(data["selection"]),
        _cases(data["held_out"]),
        data["chosen"],
        data["seconds"],
    )


# -- the page ----------------------------------------------------------------------------------


def _pct(cell: dict[str, int] | None) -> str:
    if not cell:
        return "-"
    return f"{cell['flagged']}/{cell['months']} ({100 * cell['flagged'] / cell['months']:.0f}%)"


def rate_lines(selection: dict[str, Any], held_out: dict[str, Any]) -> list[str]:
    """Recall per check, scenario and magnitude, and the false alarms: selection vs held-out."""
    lines = [
        "| check | scenario | magnitude | selection | held-out |",
        "|---|---|---|---|---|",
    ]
    keys = sorted(
        set(selection["recall"]) | set(held_out["recall"]),
        key=lambda k: (k.split("|")[0] != "first", SCENARIOS.index(k.split("|")[1]), k),
    )
    for key in keys:
        check, scenario, magnitude = key.split("|")
        name = {"first": "first (drift from the 16th)", "second": "second (the month after)"}
        lines.append(
            f"| {name[check]} | {scenario} | {float(magnitude):g} "
            f"| {_pct(selection['recall'].get(key))} | {_pct(held_out['recall'].get(key))} |"
        )
    lines.append(
        f"| stable months: false alarms | none | 0 | {_pct(selection['false_alarms'])} "
        f"| {_pct(held_out['false_alarms'])} |"
    )
    return lines


def summary_figures(table: dict[str, Any], check: str = "first") -> dict[str, float]:
    """Recall at full magnitude (every scenario's months together) and the false-alarm rate."""
    full = [
        v for k, v in table["recall"].items() if k.startswith(f"{check}|") and k.endswith("|1.0")
    ]
    hits, months = sum(v["flagged"] for v in full), sum(v["months"] for v in full)
    alarms = table["false_alarms"]
    return {
        "recall_full": hits / months if months else float("nan"),
        "min_scenario_recall_full": min(v["flagged"] / v["months"] for v in full),
        "false_alarm_rate": alarms["flagged"] / alarms["months"],
        "flagged_full": hits,
        "months_full": months,
        "false_alarms": alarms["flagged"],
        "stable_months": alarms["months"],
    }


def noise_lines(study: Study) -> list[str]:
    """Per column: the largest distance in a stable month, and the median in full drift."""
    import statistics

    stable = [c for c in study.selection + study.held_out if not c.drifted]
    lines = [
        "| column | max in a stable month | median, first check at full magnitude: "
        + ", ".join(study.config.scenarios)
        + " |",
        "|---|---|---|",
    ]
    for column in FEATURE_COLUMNS:
        noise = max((c.scores[column] or 0.0) for c in stable)
        medians = []
        for scenario in study.config.scenarios:
            values = [
                c.scores[column] or 0.0
                for c in study.selection + study.held_out
                if c.scenario == scenario and c.check == "first" and c.magnitude == 1.0
            ]
            medians.append(f"{statistics.median(values):.3f}")
        lines.append(f"| `{column}` | {noise:.3f} | {', '.join(medians)} |")
    return lines


def error_lines(study: Study) -> list[str]:
    """The held-out months decided wrongly at the chosen thresholds, with their columns."""
    t, share = study.chosen["column_threshold"], study.chosen["drift_share"]
    lines = []
    for c in study.held_out:
        if (c.drifted and c.magnitude < 1.0) or flagged(c, t, share) == c.drifted:
            continue
        columns = [k for k, v in c.scores.items() if v is not None and v >= t]
        what = "false alarm" if not c.drifted else "missed"
        kind = "stable month" if not c.drifted else f"`{c.scenario}` {c.check} check"
        lines.append(
            f"- {what}: seed {c.seed}, {YEAR}-{c.month:02d}, {kind}: {len(columns)} column(s)"
            + (f" ({', '.join(f'`{k}`' for k in columns)})" if columns else "")
        )
    return lines or ["- none"]


def _exact_bounds(figures: dict[str, Any]) -> str:
    """How far the measured rates can be trusted: exact (Clopper-Pearson) 95% bounds."""
    from scipy.stats import beta

    hit, months = figures["flagged_full"], figures["months_full"]
    alarms, stable = figures["false_alarms"], figures["stable_months"]
    low = beta.ppf(0.025, hit, months - hit + 1) if hit else 0.0
    high = beta.ppf(0.975, alarms + 1, stable - alarms) if alarms < stable else 1.0
    return (
        f"{hit} of {months} drifted months flagged, exact 95% lower bound {100 * low:.0f}%; "
        f"{alarms} of {stable} stable months flagged, upper bound {100 * high:.0f}%: more "
        "held-out seeds would narrow both"
    )


def markdown(study: Study) -> str:
    config, chosen = study.config, study.chosen
    selection, held_out = selection_rates(study), held_out_rates(study)
    figures = summary_figures(held_out)
    has_second = any(k.startswith("second|") for k in held_out["recall"])
    second = summary_figures(held_out, "second") if has_second else None
    ref_start, ref_end = config.reference
    n = len(FEATURE_COLUMNS)
    meets = (
        figures["min_scenario_recall_full"] >= TARGET_RECALL
        and figures["false_alarm_rate"] <= TARGET_FALSE_ALARMS
    )
    magnitudes = ", ".join(f"{m:g}" for m in config.magnitudes)
    lines = [
        "# Drift thresholds: calibration on graded drift, held-out seeds",
        "",
        "Written by `python -m local.simulations.drift_calibration` from the figures the study "
        "stored in `local/simulations/drift_calibration.json` (`--run` reruns the study; do not "
        "edit by hand). `tests/local/simulations/test_drift_calibration.py` runs a reduced "
        "study (one held-out seed) and asserts the targets on it.",
        "",
        "## Method",
        "",
        f"Per seed, the generator (`build_world`, {config.users} users, "
        f"{config.events_per_day} events on a weekday) delivers a file a day from "
        f"{DATA_START}. The first {WARMUP_DAYS} days only fill the 30-day windows: the "
        f"reference (the champion's training window) is the first {config.train_days} mature "
        f"feature dates, {ref_start}..{ref_end}. Each period is a calendar month of {YEAR}: "
        f"the stable months {', '.join(str(m) for m in config.stable_months)} (no drift), and "
        f"for every scenario ({', '.join(f'`{s}`' for s in config.scenarios)}) at magnitudes "
        f"{magnitudes} (`Drift(scenario, start, magnitude)`: 1 is the full change, prices x1.3, "
        "60% of the interest moved, cart rate x0.5 and purchase-after-cart x0.6; 0.5 half of "
        f"it), drift from {YEAR}-{config.drift_month:02d}-{DRIFT_DAY:02d} on: the *first check* is "
        "that month (half of its dates see the drift, their 30-day windows only partly), the "
        "*second check* the month after (at magnitude "
        f"{', '.join(f'{m:g}' for m in config.second_check_magnitudes)}). The events are read "
        "into DuckDB with their file's ingest date and the features computed by the DuckDB "
        "reference of `compute_features` (`local/simulations/duckdb_features.py`; the tests "
        "check both steps against Spark's ingest, silver and feature jobs). Each side is a "
        f"seeded uniform sample of at most {config.max_rows} rows (the job's "
        "`drift_max_rows`), and the comparison is the job's own `compare` "
        "(`spark_jobs/clickstream/monitoring/drift_report.py`: Evidently 0.7, the normed "
        "Wasserstein distance per column; a column's threshold is at least its noise floor, "
        f"the largest distance of {config.noise_draws} relabellings of the two samples "
        "pooled, so a sparse column filled by a few hundred buyers needs a larger move).",
        "",
        f"**Selection** (seeds {', '.join(map(str, study.selection_seeds))}): the distances do "
        "not depend on the thresholds, so every pair of a column threshold in "
        f"{', '.join(f'{t:g}' for t in COLUMN_THRESHOLDS)} and a drift share k/{n} "
        f"(k = 1..15) is scored from them ({chosen['pairs_tried']} pairs). A pair qualifies "
        "when the noisiest stable month of the selection stays at least "
        f"{MARGIN_COLUMNS} column below the number of drifted columns the share needs "
        f"({chosen['pairs_quiet']} pairs do); the chosen one has the best recall at full "
        "magnitude (first check), then over every magnitude, then the column threshold "
        "nearest 0.1, then the higher share.",
        "",
        f"**Held out** (seeds {', '.join(map(str, study.held_out_seeds))}): never used by "
        "the choice; their months are scored at the chosen pair from Evidently's distances "
        "(a column drifted at distance >= max(column threshold, its noise floor), the month "
        "at a drift share >= the share: Evidently's own rule, which the test checks against "
        "Evidently's verdict at the configured thresholds).",
        "",
        "## Chosen thresholds",
        "",
        f"- column drifted when its normed Wasserstein distance is >= "
        f"**{chosen['column_threshold']:g}** (`STATTEST_THRESHOLD`);",
        f"- month drifted when the drift share is >= **{chosen['drift_share']:g}** "
        f"(`drift_share`): at least {chosen['columns_needed']} of {n} columns. The noisiest "
        f"stable month of the selection drifted {chosen['noisiest_stable']} column(s).",
        "",
        f"Held-out: recall at full magnitude {100 * figures['recall_full']:.0f}% (lowest "
        f"scenario {100 * figures['min_scenario_recall_full']:.0f}%, target >= "
        f"{100 * TARGET_RECALL:.0f}%), false alarms {100 * figures['false_alarm_rate']:.0f}% "
        f"of stable months (target <= {100 * TARGET_FALSE_ALARMS:.0f}%): "
        + ("both targets met" if meets else "**the targets are not met**")
        + f" ({_exact_bounds(figures)})."
        + (
            f" By the second check (the month after the drift starts) the held-out recall at "
            f"full magnitude is {100 * second['recall_full']:.0f}% (lowest scenario "
            f"{100 * second['min_scenario_recall_full']:.0f}%)."
            if second
            else ""
        ),
        "",
        "## Recall and false alarms",
        "",
        "Months flagged / months at the chosen thresholds, per check, scenario and magnitude.",
        "",
        *rate_lines(selection, held_out),
        "",
        "## Held-out errors",
        "",
        "Every held-out month the chosen thresholds decide wrongly (full magnitude and stable "
        "months; the lower magnitudes are in the table above), with its drifted columns:",
        "",
        *error_lines(study),
        "",
        "## Which columns move",
        "",
        "The normed Wasserstein distance per column over every seed: the largest in a stable "
        "month (sampling noise), and the median at full magnitude, first check, per scenario.",
        "",
        *noise_lines(study),
        "",
        "## History, cost and limits",
        "",
        "A first round ran at a fifth of this volume (600 users, 4000 events a day; selection "
        "seeds 11-13, held out 21-23) and missed both targets: held-out recall at full "
        "magnitude 89% (a mid-month price shift moves its price columns only, their 30-day "
        "windows half drifted) and false alarms on 8% of stable months (sparse purchase "
        "columns, `avg_price_bought_*` and `cart_to_purchase_*`, that only a few hundred buyers "
        "fill). Sampling noise shrinks with volume while a drift's distances do not, and the "
        "thresholds belong to an environment, so the study now runs at the local environment's "
        "own volume, `make run`'s; seeds 21-23, looked at in that round, are not held out "
        "again. A second round at this volume chose the same pair without the noise floor "
        "(held out: full magnitude 9/9, stable months 0/12, a half-magnitude price shift 2/3); "
        "the floor was added after the suite's drift tests, on a few thousand rows, flagged "
        "stable data at 0.075, and this round reran every seed with it: the choice and the "
        "full-magnitude and stable-month figures are unchanged, while the half-magnitude price "
        "shift checked in the month it starts, whose sparse purchase-price columns the floor "
        "now asks for a larger move, is missed (0/3 held out, was 2/3).",
        "",
        f"The study took {study.seconds['selection']:.0f} s (selection) and "
        f"{study.seconds['held_out']:.0f} s (held out) of seed runs on two shared, busy cores "
        "(generation, DuckDB features and Evidently). At Databricks volume the noise of a "
        "stable month is lower still: re-check the thresholds on real traffic (a month's "
        "distances per column are in `monitoring.drift_metrics`) and set them per environment "
        "in `include/ecom_airflow/config.py`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from local.docs import generated

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--run", action="store_true", help="run the seeds, then combine")
    parser.add_argument("--seeds", type=int, nargs="*", help="with --run: only these seeds")
    parser.add_argument("--combine", action="store_true", help="combine the cached seeds")
    known, rest = parser.parse_known_args(argv)
    if known.run:
        for seed in known.seeds or (*SELECTION_SEEDS, *HELD_OUT_SEEDS):
            path = run_seed(StudyConfig(), seed, log=lambda m: print(m, flush=True))
            print(f"wrote {path}", flush=True)
    if known.combine or (known.run and not known.seeds):
        study = combine()
        RESULTS.write_text(json.dumps(to_json(study), indent=1) + "\n", encoding="utf-8")
        print(f"chosen {study.chosen}; wrote {RESULTS.relative_to(ROOT)}")
    if known.run and known.seeds and not known.combine:
        return 0

    def generate() -> str:
        return markdown(from_json(json.loads(RESULTS.read_text(encoding="utf-8"))))

    return generated.main(
        rest,
        prog="python -m local.simulations.drift_calibration",
        description=__doc__,
        default=PAGE,
        generate=generate,
    )


if __name__ == "__main__":
    sys.exit(main())
