"""After a behaviour change: does the served champion get calibrated again?

``python -m local.simulations.behaviour_recovery --run`` simulates the loop the system closes on
its own and stores the timeline in ``local/simulations/behaviour_recovery.json``; without
``--run`` the page ``docs/behaviour_recovery.md`` is written from it (``--check``: fail when the
page is not current). ``tests/local/simulations/test_behaviour_recovery.py`` runs a short
timeline and checks the loop in both directions.

**The loop.** A champion is trained on the first mature windows of a world (``build_world``),
then the generator's ``behaviour_change`` starts (carts and purchases fall). Every day ``S``:

1. the champion of the day scores the feature rows of ``S`` (what ``model_serving`` serves);
2. on ``T = S + h`` the labels of ``S`` have closed and the monitor measures the scores
   (``clickstream.monitoring.performance``: ECE, ROC AUC, the decay rule and its thresholds
   ``performance_max_ece`` / ``performance_max_auc_drop``, at least ``performance_min_rows``
   labelled rows, a ``performance_cooldown`` between retrainings, no retraining for a version
   that no longer serves);
3. on a decay, the training of ``as_of = T`` runs with the training's own windows (``Windows``),
   candidates (``candidates``), promotion rule (``judge``: paired per-user interval, calibration
   tolerance and the recalibration rule) and refit; a promoted model serves from ``T + 1``.

Events and features are the drift study's (``generate_day`` read into DuckDB, the DuckDB
reference of ``compute_features``, checked against Spark by its tests); labels follow
``clickstream.pipeline.labels`` (a purchase with event date in ``[F+1, F+h]`` delivered by
``F+h``). Monthly drift retraining is left out: this isolates the second reason to retrain.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _folder in ("spark_jobs", "include"):
    if str(ROOT / _folder) not in sys.path:
        sys.path.insert(0, str(ROOT / _folder))

from ecom_airflow.config import LOCAL  # noqa: E402
from local.simulations.drift_calibration import (  # noqa: E402
    _EVENTS,
    _range,
    features,
    load_days,
)

RESULTS = Path(__file__).resolve().with_suffix(".json")
PAGE = ROOT / "docs" / "behaviour_recovery.md"
DATA_START = date(2019, 1, 1)
TARGET_ECE = 0.03  # the served champion's pooled ECE once the monitor has retrained


@dataclass(frozen=True)
class RecoveryConfig:
    seed: int = 7
    users: int = 3_000
    events_per_day: int = 20_000  # make run's weekday volume
    quiet_days: int = 14  # days the first champion serves before the drift starts
    days_after: int = 70  # days of data from the drift's start on
    scenario: str = "behaviour_change"
    magnitude: float = 1.0
    horizon_days: int = LOCAL.label_horizon_days
    train_days: int = LOCAL.train_days
    validation_days: int = LOCAL.validation_days
    max_ece: float = LOCAL.performance_max_ece
    max_auc_drop: float = LOCAL.performance_max_auc_drop
    min_rows: int = LOCAL.performance_min_rows
    cooldown_days: int = LOCAL.performance_cooldown.days
    margin: float = LOCAL.promotion_margin
    calibration_tolerance: float = LOCAL.promotion_calibration_tolerance
    replicates: int = 200

    @property
    def first_as_of(self) -> date:
        """The first champion's as-of date: the fewest days that give it mature windows."""
        return DATA_START + timedelta(days=LOCAL.first_training_days)

    @property
    def drift_start(self) -> date:
        return self.first_as_of + timedelta(days=1 + self.quiet_days)

    @property
    def last_day(self) -> date:
        return self.drift_start + timedelta(days=self.days_after - 1)


@dataclass
class Model:
    version: int
    as_of: str
    pipeline: Any = field(repr=False)
    validation_roc_auc: float
    validation_ece: float
    serves_from: str


@dataclass
class Timeline:
    config: RecoveryConfig
    measured: list[dict[str, Any]] = field(default_factory=list)  # one row per score date
    trainings: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)  # pooled, per version
    seconds: float = 0.0


class World:
    """The generated days in DuckDB, their features and labels, computed once per date."""

    def __init__(self, config: RecoveryConfig, tmp: str, log=print) -> None:
        import duckdb

        from clickstream.sources.synthetic import Drift, build_world

        self.config = config
        self.con = duckdb.connect()
        self.con.execute(f"CREATE TABLE events ({_EVENTS})")
        drift = Drift(config.scenario, config.drift_start, config.magnitude)
        world = build_world(config.seed, config.users)
        days = _range(DATA_START, config.last_day)
        started = time.monotonic()
        for i in range(0, len(days), 30):
            chunk = days[i : i + 30]
            load_days(
                self.con, "events", world, config.seed, chunk, config.events_per_day, drift, tmp
            )
            log(f"[{time.monotonic() - started:5.0f}s] generated up to {chunk[-1]}")
        self._rows: dict[date, Any] = {}

    def rows(self, day: date):
        """The feature rows of ``day`` with their label (``purchased``)."""
        if day not in self._rows:
            frame = features(self.con, "events", [day])
            h = self.config.horizon_days
            bought = self.con.sql(
                "SELECT DISTINCT user_id FROM events WHERE event_type = 'purchase' "
                f"AND event_date BETWEEN DATE '{day + timedelta(days=1)}' "
                f"AND DATE '{day + timedelta(days=h)}' "
                f"AND ingest_date <= DATE '{day + timedelta(days=h)}'"
            ).df()
            frame["purchased"] = frame["user_id"].isin(bought["user_id"]).astype(int)
            self._rows[day] = frame
        return self._rows[day]

    def window(self, first: date, last: date):
        import pandas as pd

        return pd.concat([self.rows(d) for d in _range(first, last)], ignore_index=True)


def train(
    world: World, as_of: date, champion: Model | None, version: int
) -> tuple[dict, Model | None]:
    """The training of ``as_of``: the job's windows, candidates, promotion rule and refit."""
    import numpy as np

    from clickstream.models.propensity.candidates import candidates
    from clickstream.models.propensity.data import Windows, features_frame
    from clickstream.models.propensity.evaluation import metrics, recency_baseline
    from clickstream.models.propensity.training import judge

    config = world.config
    windows = Windows.build(
        as_of.isoformat(), config.horizon_days, config.train_days, config.validation_days
    )
    train_rows = world.window(*windows.train)
    selection, evaluation = world.window(*windows.selection), world.window(*windows.evaluation)
    x_train, y_train = features_frame(train_rows), train_rows["purchased"].to_numpy()
    x_eval, y_eval = features_frame(evaluation), evaluation["purchased"].to_numpy()
    fitted = {}
    for name, pipeline in candidates(config.seed).items():
        pipeline.fit(x_train, y_train)
        p_sel = pipeline.predict_proba(features_frame(selection))[:, 1]
        fitted[name] = (pipeline, metrics(selection["purchased"].to_numpy(), p_sel)["roc_auc"])
    best = max(fitted, key=lambda n: fitted[n][1])
    scores = {
        "challenger": fitted[best][0].predict_proba(x_eval)[:, 1],
        "baseline": recency_baseline(x_eval),
    }
    if champion is not None:
        scores["champion"] = champion.pipeline.predict_proba(x_eval)[:, 1]
    judgment = judge(
        y_eval,
        evaluation["user_id"].to_numpy(),
        scores,
        champion_version=str(champion.version) if champion else None,
        margin=config.margin,
        calibration_tolerance=config.calibration_tolerance,
        replicates=config.replicates,
        seed=config.seed,
    )
    figures = judgment.metrics
    record = {
        "as_of": as_of.isoformat(),
        "candidate": best,
        "promoted": judgment.decision.promote,
        "reason": judgment.decision.reason,
        "challenger_roc_auc": figures["challenger"]["roc_auc"],
        "challenger_ece": figures["challenger"]["calibration_error"],
        "champion_roc_auc": figures["champion"]["roc_auc"] if champion else None,
        "champion_ece": figures["champion"]["calibration_error"] if champion else None,
    }
    if not judgment.decision.promote:
        return record, None
    refit_rows = world.window(windows.train[0], windows.validation[1])
    pipeline = candidates(config.seed)[best]
    pipeline.fit(features_frame(refit_rows), refit_rows["purchased"].to_numpy())
    record["version"] = version
    model = Model(
        version,
        as_of.isoformat(),
        pipeline,
        float(np.round(figures["challenger"]["roc_auc"], 6)),
        float(np.round(figures["challenger"]["calibration_error"], 6)),
        (as_of + timedelta(days=1)).isoformat(),
    )
    return record, model


def simulate(config: RecoveryConfig, log=print) -> Timeline:
    """The day-by-day loop of the module's doc, from the first champion to the last day whose
    labels have closed."""
    from clickstream.models.propensity.data import features_frame
    from clickstream.models.propensity.evaluation import expected_calibration_error, metrics
    from clickstream.monitoring.performance import decay_reasons

    started = time.monotonic()
    timeline = Timeline(config)
    with tempfile.TemporaryDirectory(prefix="behaviour-recovery-") as tmp:
        world = World(config, tmp, log=log)
        record, champion = train(world, config.first_as_of, None, 1)
        timeline.trainings.append({**record, "trigger": "first"})
        if champion is None:
            raise RuntimeError(f"the first training was not promoted: {record}")
        serving: dict[date, Model] = {}
        pooled: dict[int, list[tuple[Any, Any]]] = {}
        last_retraining: date | None = None
        day = config.first_as_of + timedelta(days=1)
        while day <= config.last_day:
            if day + timedelta(days=config.horizon_days) <= config.last_day:
                serving[day] = champion  # the champion of the day scores it
            measured_on = day - timedelta(days=config.horizon_days)
            if measured_on in serving:  # its labels closed today: the monitor measures it
                rows = world.rows(measured_on)
                model = serving[measured_on]
                p = model.pipeline.predict_proba(features_frame(rows))[:, 1]
                y = rows["purchased"].to_numpy()
                figures = {**metrics(y, p), "ece": expected_calibration_error(y, p)}
                reasons = decay_reasons(
                    figures,
                    {"roc_auc": model.validation_roc_auc},
                    max_ece=config.max_ece,
                    max_auc_drop=config.max_auc_drop,
                )
                status = "decayed" if reasons else "healthy"
                if len(y) < config.min_rows or len(set(y.tolist())) < 2:
                    status, reasons = "insufficient_data", []
                decision = status
                if status == "decayed":
                    if model is not champion:
                        decision = "superseded"
                    elif last_retraining and day - last_retraining < timedelta(
                        days=config.cooldown_days
                    ):
                        decision = "cooldown"
                    else:
                        decision = "trigger_retraining"
                timeline.measured.append(
                    {
                        "score_date": measured_on.isoformat(),
                        "measured_on": day.isoformat(),
                        "version": model.version,
                        "rows": len(y),
                        "positives": int(y.sum()),
                        "roc_auc": figures["roc_auc"],
                        "ece": figures["ece"],
                        "base_rate": float(y.mean()),
                        "mean_score": float(p.mean()),
                        "decision": decision,
                        "reasons": reasons,
                    }
                )
                pooled.setdefault(model.version, []).append((y, p))
                if decision == "trigger_retraining":
                    last_retraining = day
                    version = max(m.version for m in serving.values()) + 1
                    record, promoted = train(world, day, champion, version)
                    timeline.trainings.append({**record, "trigger": "performance"})
                    log(f"[{time.monotonic() - started:5.0f}s] {day}: retrained, {record}")
                    if promoted is not None:
                        champion = promoted
            day += timedelta(days=1)
    timeline.versions = {str(v): _pooled(parts) for v, parts in sorted(pooled.items())}
    timeline.seconds = round(time.monotonic() - started, 1)
    return timeline


def _pooled(parts: list[tuple[Any, Any]]) -> dict[str, Any]:
    """A version's figures over every served date it was measured on, rows pooled."""
    import numpy as np

    from clickstream.models.propensity.evaluation import expected_calibration_error, metrics

    y = np.concatenate([y for y, _ in parts])
    p = np.concatenate([p for _, p in parts])
    return {
        "dates": len(parts),
        "rows": len(y),
        "roc_auc": metrics(y, p)["roc_auc"],
        "ece": expected_calibration_error(y, p),
        "base_rate": float(y.mean()),
        "mean_score": float(p.mean()),
    }


def outcome(timeline: Timeline) -> dict[str, Any]:
    """What the loop shows: quiet before the drift, a trigger after it, and the champion that
    serves at the end calibrated again (pooled ECE over its measured dates)."""
    config = timeline.config
    before = [
        m
        for m in timeline.measured
        if date.fromisoformat(m["score_date"]) + timedelta(days=config.horizon_days)
        < config.drift_start
    ]
    triggers = [m for m in timeline.measured if m["decision"] == "trigger_retraining"]
    final = str(timeline.measured[-1]["version"]) if timeline.measured else None
    first_trigger = triggers[0]["measured_on"] if triggers else None
    return {
        "quiet_dates": len(before),
        "quiet_alarms": sum(m["decision"] != "healthy" for m in before),
        "first_trigger": first_trigger,
        "days_to_trigger": (
            (date.fromisoformat(first_trigger) - config.drift_start).days if triggers else None
        ),
        "retrainings": len(triggers),
        "promotions": sum(1 for t in timeline.trainings if t["promoted"]) - 1,
        "final_version": final,
        "final": timeline.versions.get(final) if final else None,
        "target_ece": TARGET_ECE,
        "met": bool(
            triggers and final not in (None, "1") and timeline.versions[final]["ece"] <= TARGET_ECE
        ),
    }


def to_json(timeline: Timeline) -> dict[str, Any]:
    return {
        "config": {
            **asdict(timeline.config),
            "drift_start": timeline.config.drift_start.isoformat(),
        },
        "seconds": timeline.seconds,
        "trainings": timeline.trainings,
        "versions": timeline.versions,
        "measured": timeline.measured,
    }


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(data: dict[str, Any]) -> str:
    config = RecoveryConfig(
        **{k: v for k, v in data["config"].items() if k in RecoveryConfig.__dataclass_fields__}
    )
    timeline = Timeline(
        config, data["measured"], data["trainings"], data["versions"], data["seconds"]
    )
    result = outcome(timeline)
    lines = [
        "# After a behaviour change: the served champion, calibrated again",
        "",
        "Written by `python -m local.simulations.behaviour_recovery` from the timeline it stored "
        "in `local/simulations/behaviour_recovery.json` (`--run` reruns it; do not edit by "
        "hand). The loop, the rules it uses and what it leaves out are in the module's "
        "docstring; `tests/local/simulations/test_behaviour_recovery.py` runs a short timeline "
        "and checks each rule in both directions.",
        "",
        "## Set-up",
        "",
        f"World seed {config.seed}, {config.users} users, {config.events_per_day} events on a "
        f"weekday (make run's volume). The first champion is trained as of "
        f"{config.first_as_of} (the fewest days that give it mature windows); it serves "
        f"{config.quiet_days} days, then `{config.scenario}` starts on {config.drift_start} at "
        f"magnitude {config.magnitude} and stays. Windows: train {config.train_days} days, "
        f"validation {config.validation_days}, label horizon {config.horizon_days}. The monitor's "
        f"rule: ECE > {config.max_ece} or ROC AUC more than {config.max_auc_drop} below the "
        f"version's validation ROC AUC, at least {config.min_rows} labelled rows, "
        f"{config.cooldown_days}-day cooldown.",
        "",
        "## Outcome",
        "",
        f"- Before the drift: {result['quiet_alarms']} alarm(s) on {result['quiet_dates']} "
        "measured score dates whose labels closed before it.",
        f"- First trigger: {result['first_trigger'] or 'none'}"
        + (
            f", {result['days_to_trigger']} day(s) after the drift started"
            if result["first_trigger"]
            else ""
        )
        + f"; {result['retrainings']} retraining(s), {result['promotions']} promotion(s).",
    ]
    final = result["final"]
    if final:
        lines.append(
            f"- The champion serving at the end (version {result['final_version']}): pooled ECE "
            f"**{_f(final['ece'])}** over {final['dates']} measured dates ({final['rows']} rows), "
            f"ROC AUC {_f(final['roc_auc'])} (target ECE <= {TARGET_ECE}: "
            f"**{'met' if result['met'] else 'not met'}**)."
        )
    lines += [
        "",
        "## Versions (every measured date it served, rows pooled)",
        "",
        "| version | dates | rows | ROC AUC | ECE | base rate | mean score |",
        "|---|---|---|---|---|---|---|",
    ]
    for version, v in timeline.versions.items():
        lines.append(
            f"| {version} | {v['dates']} | {v['rows']} | {_f(v['roc_auc'])} | {_f(v['ece'])} | "
            f"{_f(v['base_rate'])} | {_f(v['mean_score'])} |"
        )
    lines += [
        "",
        "## Trainings",
        "",
        "| as of | trigger | candidate | challenger ROC AUC / ECE | champion ROC AUC / ECE | "
        "decision |",
        "|---|---|---|---|---|---|",
    ]
    for t in timeline.trainings:
        lines.append(
            f"| {t['as_of']} | {t['trigger']} | {t['candidate']} | "
            f"{_f(t['challenger_roc_auc'])} / {_f(t['challenger_ece'])} | "
            f"{_f(t['champion_roc_auc'])} / {_f(t['champion_ece'])} | "
            f"{'promoted' if t['promoted'] else 'kept'}: {t['reason']} |"
        )
    lines += [
        "",
        "## Day by day",
        "",
        "| score date | measured on | version | rows | ROC AUC | ECE | base rate | mean score | "
        "decision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in timeline.measured:
        lines.append(
            f"| {m['score_date']} | {m['measured_on']} | {m['version']} | {m['rows']} | "
            f"{_f(m['roc_auc'])} | {_f(m['ece'])} | {_f(m['base_rate'])} | "
            f"{_f(m['mean_score'])} | {m['decision']} |"
        )
    lines += ["", f"The run took {data['seconds']:.0f} s on two shared cores."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from local.docs import generated

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--run", action="store_true", help="simulate, then write the page")
    known, rest = parser.parse_known_args(argv)
    if known.run:
        timeline = simulate(RecoveryConfig(), log=lambda m: print(m, flush=True))
        RESULTS.write_text(json.dumps(to_json(timeline), indent=1) + "\n", encoding="utf-8")
        print(f"{outcome(timeline)}; wrote {RESULTS.relative_to(ROOT)}")

    def generate() -> str:
        return markdown(json.loads(RESULTS.read_text(encoding="utf-8")))

    return generated.main(
        rest,
        prog="python -m local.simulations.behaviour_recovery",
        description=__doc__,
        default=PAGE,
        generate=generate,
    )


if __name__ == "__main__":
    sys.exit(main())
