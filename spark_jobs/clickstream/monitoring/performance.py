"""Realised performance of the served propensity scores, once their labels have closed.

**What is measured.** The scores of a score date ``S`` (``gold.propensity_scores``,
``score_date = S``; every row names the model version that produced it) joined on ``user_id``
with the closed labels of the same date (``silver.user_labels``, ``feature_date = S`` and
``horizon_days = h``): a score served on ``S`` predicts a purchase in ``(S, S + h]``, which is
exactly the label of the feature row of ``S``. The labels of ``S`` are written by the offline
run of ``S + h``, so the job for a logical date ``T`` measures ``S = T - h`` (or a range of
score dates for a backfill, each with ``S + h <= T``).

**Missing labels are counted, never dropped silently.** A scored user without a label row (the
label population is derived from silver with the features' rule, so this means the scores and
the labels disagree, or the labels of ``S`` are not closed yet) is counted in
``unlabelled_rows`` and named in the summary and the report; the metrics are computed on the
labelled rows only.

**Metrics** (one row per score date and model version of ``monitoring.model_performance``,
:data:`MODEL_PERFORMANCE`): ROC AUC and PR AUC (scikit-learn, on the raw scores), the
expected calibration error and the lift at the top decile (the training's own functions,
:mod:`clickstream.models.propensity.evaluation`), the base rate, the mean score, the counts.
Next to them, what the version showed at training time: the ROC AUC and calibration error its
candidate run logged on the validation window (read from MLflow through the registry).

**The decay rule** (:func:`decay_reasons`): a score date with at least ``min_rows`` labelled
rows of both classes has *decayed* when its ECE is above ``max_ece`` (an absolute bound:
calibration is what a behaviour change breaks while the ranking survives) or its ROC AUC is
below the version's validation ROC AUC by more than ``max_auc_drop``. The airflow side
(``PerformanceBranchSensor``) applies the same rule to the summary's figures and adds the
cooldown and the in-flight check before it triggers ``model_training`` with
``reason=performance``.

**Outputs.** The rows (replaced per score date on a rerun), ``<output>.html`` (a self-contained
page: no script, stylesheet or font is fetched) and ``<output>.json`` (the summary the sensor
reads).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.metrics import average_precision_score, roc_auc_score

from clickstream.core.contracts import (
    PROPENSITY_SCORES,
    USER_LABELS,
    Column,
    Contract,
    write_partition,
)
from clickstream.core.jobs import JobError
from clickstream.core.schema import parse_ds
from clickstream.core.volumes import local_path
from clickstream.models.propensity.evaluation import (
    expected_calibration_error,
    lift_at_top_decile,
)
from clickstream.models.registry import alias_version
from clickstream.models.retraining import last_retraining

HEALTHY, DECAYED, INSUFFICIENT = "healthy", "decayed", "insufficient_data"
NO_SCORES = "no_scores"  # the summary's status when the decision date has no scores at all
# Metric names a candidate run logs for its validation window (the first one present is used).
TRAINING_AUC_KEYS = ("roc_auc",)
TRAINING_ECE_KEYS = ("calibration_error", "ece", "expected_calibration_error")
CALIBRATION_BINS = 10  # as the training's expected_calibration_error

MODEL_PERFORMANCE = Contract(
    schema="monitoring",
    table="model_performance",
    comment="realised performance of the served propensity scores once their labels closed: "
    "one row per score date and model version",
    columns=(
        Column("score_date", "date", False, "the date the scores were served"),
        Column("horizon_days", "int", False, "label horizon: a purchase in (S, S + h]"),
        Column("model_name", "string", False),
        Column("model_version", "string", False, "the version that scored these rows"),
        Column("rows", "bigint", False, "scores of the date by this version"),
        Column("labelled_rows", "bigint", False, "scores whose user has a closed label"),
        Column("unlabelled_rows", "bigint", False, "scores without a label row (not dropped)"),
        Column("positives", "bigint", False, "labelled rows with a purchase"),
        Column("base_rate", "double", True, "positives / labelled rows"),
        Column("mean_score", "double", True, "mean score of the labelled rows"),
        Column("roc_auc", "double", True, "null unless both classes are present"),
        Column("pr_auc", "double", True, "average precision; null unless both classes"),
        Column("ece", "double", True, "expected calibration error, 10 equal-width bins"),
        Column("lift_top_decile", "double", True, "positive rate of the top 10% / base rate"),
        Column("training_roc_auc", "double", True, "the version's validation ROC AUC"),
        Column("training_ece", "double", True, "the version's validation calibration error"),
        Column("status", "string", False, "healthy, decayed or insufficient_data"),
        Column("decay_reasons", "string", True, "why decayed ('; '-separated), else null"),
        Column("logical_date", "date", False, "logical date of the run that measured it"),
        Column("airflow_run_id", "string", False),
    ),
    partitioned_by=("score_date",),
)


@dataclass(frozen=True)
class PerformanceConfig:
    """One run: the score dates ``[start, end]`` measured on the logical date ``logical_date``.

    ``max_ece``, ``max_auc_drop`` and ``min_rows``: the decay rule (:func:`decay_reasons`);
    the DAG passes the environment's values.
    """

    logical_date: str
    start: str
    end: str
    catalog: str
    model_name: str
    experiment: str
    output: str  # path without extension: <output>.html and <output>.json are written
    horizon_days: int = 7
    silver_schema: str = "silver"
    gold_schema: str = "gold"
    monitoring_schema: str = "monitoring"
    max_ece: float = 0.08
    max_auc_drop: float = 0.05
    min_rows: int = 1000
    airflow_run_id: str = "manual"

    def __post_init__(self) -> None:
        logical, start, end = (parse_ds(v) for v in (self.logical_date, self.start, self.end))
        if end < start:
            raise ValueError(f"--end-ds {end} is before --start-ds {start}")
        if self.horizon_days < 1:
            raise ValueError(f"--horizon-days must be at least 1, got {self.horizon_days}")
        closed = date.fromisoformat(end) + timedelta(days=self.horizon_days)
        if closed > date.fromisoformat(logical):
            raise ValueError(
                f"the labels of score date {end} close on {closed.isoformat()}, after the "
                f"logical date {logical}: measure score dates up to "
                f"{(date.fromisoformat(logical) - timedelta(days=self.horizon_days)).isoformat()}"
            )
        if not 0.0 < self.max_ece < 1.0:
            raise ValueError(f"--max-ece must be in (0, 1), got {self.max_ece}")
        if not 0.0 <= self.max_auc_drop < 0.5:
            raise ValueError(f"--max-auc-drop must be in [0, 0.5), got {self.max_auc_drop}")
        if self.min_rows < 1:
            raise ValueError(f"--min-rows must be at least 1, got {self.min_rows}")
        object.__setattr__(self, "logical_date", logical)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def score_dates(self) -> list[str]:
        first, last = date.fromisoformat(self.start), date.fromisoformat(self.end)
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


# -- metrics -----------------------------------------------------------------------------------


def realised_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """The metrics of labelled rows ``y`` (0/1) scored ``p``, on the raw scores (no clipping).

    ROC AUC and PR AUC need both classes: null otherwise. An empty input gives nulls.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return dict.fromkeys(
            ("base_rate", "mean_score", "roc_auc", "pr_auc", "ece", "lift_top_decile")
        )
    both = 0 < y.sum() < len(y)
    lift = lift_at_top_decile(y, p)
    return {
        "base_rate": float(y.mean()),
        "mean_score": float(p.mean()),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "ece": expected_calibration_error(y, p, bins=CALIBRATION_BINS),
        "lift_top_decile": lift if math.isfinite(lift) else None,
    }


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """(bin, rows, mean score, observed rate) of the equal-width bins the ECE uses."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            out.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "rows": int(mask.sum()),
                    "mean_score": float(p[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                }
            )
    return out


def decay_reasons(
    figures: dict[str, Any],
    training: dict[str, Any],
    *,
    max_ece: float,
    max_auc_drop: float,
) -> list[str]:
    """Why a measured score date has decayed (empty: it has not).

    ``figures``: ``ece`` and ``roc_auc`` of the date; ``training``: ``roc_auc`` of the version
    on its validation window (the AUC rule is skipped when unknown).
    """
    reasons = []
    ece, auc, trained_auc = figures.get("ece"), figures.get("roc_auc"), training.get("roc_auc")
    if ece is not None and ece > max_ece:
        reasons.append(f"ECE {ece:.4f} > {max_ece}")
    if auc is not None and trained_auc is not None and auc < trained_auc - max_auc_drop:
        reasons.append(f"ROC AUC {auc:.4f} < validation ROC AUC {trained_auc:.4f} - {max_auc_drop}")
    return reasons


def status_of(
    figures: dict[str, Any], training: dict[str, Any], config: PerformanceConfig
) -> tuple[str, list[str]]:
    """``insufficient_data`` (fewer than ``min_rows`` labelled rows or one class only),
    ``decayed`` (with its reasons) or ``healthy``."""
    if figures["labelled_rows"] < config.min_rows or figures["roc_auc"] is None:
        return INSUFFICIENT, []
    reasons = decay_reasons(
        figures, training, max_ece=config.max_ece, max_auc_drop=config.max_auc_drop
    )
    return (DECAYED if reasons else HEALTHY), reasons


# -- MLflow ------------------------------------------------------------------------------------


def _first(values: dict[str, float], keys: tuple[str, ...]) -> float | None:
    return next((float(values[k]) for k in keys if k in values), None)


def training_figures(client: MlflowClient, model_name: str, version: str) -> dict[str, Any]:
    """What ``version`` showed on its validation window when it was trained: the metrics of
    its source run (the winning candidate's run that ``train_models`` registered)."""
    empty = {"roc_auc": None, "ece": None, "run_id": None}
    try:
        found = client.get_model_version(model_name, version)
    except MlflowException:
        return empty
    run_id = found.run_id or found.tags.get("run_id")
    if not run_id:
        return empty
    try:
        values = client.get_run(run_id).data.metrics
    except MlflowException:
        return {**empty, "run_id": run_id}
    return {
        "roc_auc": _first(values, TRAINING_AUC_KEYS),
        "ece": _first(values, TRAINING_ECE_KEYS),
        "run_id": run_id,
    }


# -- Spark -------------------------------------------------------------------------------------


def _between(column: str, start: str, end: str):
    return F.col(column).between(F.lit(start).cast("date"), F.lit(end).cast("date"))


def joined_rows(spark: SparkSession, config: PerformanceConfig, start: str, end: str) -> DataFrame:
    """(score_date, model_version, user_id, score, purchased or null) of every score of the
    model in ``[start, end]``: scores left-joined with the labels of the same date and horizon.
    """
    scores_name = PROPENSITY_SCORES.name(config.catalog, config.gold_schema)
    labels_name = USER_LABELS.name(config.catalog, config.silver_schema)
    if not spark.catalog.tableExists(scores_name):
        raise JobError(f"{scores_name} does not exist: run the model_serving DAG first")
    scores = (
        spark.table(scores_name)
        .where(_between("score_date", start, end))
        .where(F.col("model_name") == config.model_name)
        .select("score_date", "model_version", "user_id", F.col("score").cast("double"))
    )
    if spark.catalog.tableExists(labels_name):
        labels = (
            spark.table(labels_name)
            .where(_between("feature_date", start, end))
            .where(F.col("horizon_days") == config.horizon_days)
            .select(
                F.col("feature_date").alias("score_date"),
                "user_id",
                F.col("purchased").cast("int"),
            )
        )
    else:  # no label was ever closed: every score is unlabelled, and reported as such
        labels = spark.createDataFrame([], "score_date date, user_id bigint, purchased int")
    return scores.join(labels, ["score_date", "user_id"], "left")


def measure(
    spark: SparkSession, config: PerformanceConfig, client: MlflowClient
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], list[dict]]]:
    """One figure dict per (score date, model version), and the calibration bins of each.

    One score date at a time on the driver (two numbers per scored user): the exact ROC AUC
    needs every score, and a backfill range never holds more than one date in memory.
    """
    figures, bins = [], {}
    training: dict[str, dict[str, Any]] = {}  # per version: read from MLflow once
    for day in config.score_dates:
        pdf = joined_rows(spark, config, day, day).toPandas()
        for version, group in sorted(pdf.groupby("model_version"), key=lambda item: item[0]):
            version = str(version)
            if version not in training:
                training[version] = training_figures(client, config.model_name, version)
            labelled = group[group["purchased"].notna()]
            y = labelled["purchased"].to_numpy(dtype=int)
            p = labelled["score"].to_numpy(dtype=float)
            figures.append(_figures(config, day, version, len(group), y, p, training[version]))
            bins[(day, version)] = calibration_bins(y, p)
    return figures, bins


def _figures(
    config: PerformanceConfig,
    day: str,
    version: str,
    rows: int,
    y: np.ndarray,
    p: np.ndarray,
    training: dict[str, Any],
) -> dict[str, Any]:
    """The figures of one score date's ``rows`` scores by one version, ``y``/``p`` labelled."""
    row = {
        "score_date": day,
        "model_version": version,
        "rows": rows,
        "labelled_rows": len(y),
        "unlabelled_rows": rows - len(y),
        "positives": int(y.sum()),
        **realised_metrics(y, p),
        "training_roc_auc": training["roc_auc"],
        "training_ece": training["ece"],
        "training_run_id": training["run_id"],
    }
    row["status"], row["decay_reasons"] = status_of(row, training, config)
    return row


def _table_rows(config: PerformanceConfig, figures: list[dict[str, Any]]) -> list[tuple]:
    rows = []
    for f in figures:
        rows.append(
            (
                date.fromisoformat(f["score_date"]),
                config.horizon_days,
                config.model_name,
                f["model_version"],
                f["rows"],
                f["labelled_rows"],
                f["unlabelled_rows"],
                f["positives"],
                f["base_rate"],
                f["mean_score"],
                f["roc_auc"],
                f["pr_auc"],
                f["ece"],
                f["lift_top_decile"],
                f["training_roc_auc"],
                f["training_ece"],
                f["status"],
                "; ".join(f["decay_reasons"]) or None,
                date.fromisoformat(config.logical_date),
                config.airflow_run_id,
            )
        )
    return rows


def _decision_row(figures: list[dict[str, Any]], day: str) -> dict[str, Any] | None:
    """The figures the retraining decision reads: the last score date's, of the version that
    scored most of its labelled rows (serving scores a date with one version)."""
    of_day = [f for f in figures if f["score_date"] == day]
    return max(of_day, key=lambda f: (f["labelled_rows"], f["rows"])) if of_day else None


def summary_of(
    config: PerformanceConfig,
    figures: list[dict[str, Any]],
    champion: str | None,
    last: dict[str, str] | None,
    table: str,
) -> dict[str, Any]:
    """The JSON the ``PerformanceBranchSensor`` reads (see ``ecom_plugins.performance_branch``)."""
    decision = _decision_row(figures, config.end)
    measured = {f["score_date"] for f in figures}
    keys = ("rows", "labelled_rows", "unlabelled_rows", "positives", "base_rate", "mean_score")
    keys += ("roc_auc", "pr_auc", "ece", "lift_top_decile")
    return {
        "logical_date": config.logical_date,
        "score_dates": {"start": config.start, "end": config.end},
        "decision_date": config.end,
        "horizon_days": config.horizon_days,
        "status": decision["status"] if decision else NO_SCORES,
        "decay_reasons": decision["decay_reasons"] if decision else [],
        "model_name": config.model_name,
        "model_version": decision["model_version"] if decision else None,
        "champion_version": champion,
        "metrics": {k: decision[k] for k in keys} if decision else None,
        "training": {
            "roc_auc": decision["training_roc_auc"] if decision else None,
            "ece": decision["training_ece"] if decision else None,
            "run_id": decision["training_run_id"] if decision else None,
        },
        "thresholds": {
            "max_ece": config.max_ece,
            "max_auc_drop": config.max_auc_drop,
            "min_rows": config.min_rows,
        },
        "unlabelled_rows": sum(f["unlabelled_rows"] for f in figures),
        "dates_without_scores": [d for d in config.score_dates if d not in measured],
        "rows": [{k: v for k, v in f.items() if k != "training_run_id"} for f in figures],
        "last_performance_retraining": last,
        "report": config.output + ".html",
        "table": table,
    }


# -- the report --------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
    "margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
    "td{white-space:nowrap}"
    "th{background:#f4f4f4}td.l,th.l{text-align:left}.decayed{color:#b00020;font-weight:bold}"
    ".healthy{color:#1b5e20}.insufficient_data,.no_scores{color:#8a6d00}"
)


def _fmt(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _reliability_svg(bins: list[dict]) -> str:
    """An inline SVG reliability diagram: observed rate against mean score per bin."""
    size, pad = 260, 30
    inner = size - 2 * pad

    def xy(score: float, rate: float) -> tuple[float, float]:
        return pad + score * inner, size - pad - rate * inner

    dots = "".join(
        '<circle cx="{:.1f}" cy="{:.1f}" r="{:.1f}" fill="#1565c0">'
        "<title>{}</title></circle>".format(
            *xy(b["mean_score"], b["observed_rate"]),
            2 + min(6.0, math.log1p(b["rows"])),
            html.escape(
                f"{b['low']:.1f}-{b['high']:.1f}: {b['rows']} rows, mean score "
                f"{b['mean_score']:.3f}, observed {b['observed_rate']:.3f}"
            ),
        )
        for b in bins
    )
    x0, y0 = xy(0, 0)
    x1, y1 = xy(1, 1)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        'role="img" aria-label="reliability diagram">'
        f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#999"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4"/>'
        f"{dots}"
        f'<text x="{size / 2}" y="{size - 6}" font-size="11" text-anchor="middle">mean score'
        "</text>"
        f'<text x="10" y="{size / 2}" font-size="11" transform="rotate(-90 10 {size / 2})" '
        'text-anchor="middle">observed purchase rate</text></svg>'
    )


def render_html(summary: dict[str, Any], bins: dict[tuple[str, str], list[dict]]) -> str:
    """The run's page: the decision, every measured row, a reliability diagram per row.
    Self-contained: inline CSS and SVG, no script, nothing fetched."""
    status = summary["status"]
    reasons = "; ".join(summary["decay_reasons"]) or "none"
    thresholds = summary["thresholds"]
    columns = (
        ("score_date", "score date"),
        ("model_version", "version"),
        ("rows", "scores"),
        ("labelled_rows", "labelled"),
        ("unlabelled_rows", "no label"),
        ("base_rate", "base rate"),
        ("mean_score", "mean score"),
        ("roc_auc", "ROC AUC"),
        ("training_roc_auc", "validation ROC AUC"),
        ("pr_auc", "PR AUC"),
        ("ece", "ECE"),
        ("training_ece", "validation ECE"),
        ("lift_top_decile", "lift top 10%"),
        ("status", "status"),
    )
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{html.escape(str(row[key]))}">{_fmt(row[key])}</td>'
            if key == "status"
            else f"<td>{_fmt(row[key])}</td>"
            for key, _ in columns
        )
        + "</tr>"
        for row in summary["rows"]
    )
    plots = "".join(
        f"<figure><figcaption>{html.escape(day)} v{html.escape(version)}</figcaption>"
        f"{_reliability_svg(points)}</figure>"
        for (day, version), points in sorted(bins.items())
        if points
    )
    missing = summary["dates_without_scores"]
    notes = []
    if summary["unlabelled_rows"]:
        notes.append(
            f"{summary['unlabelled_rows']} score(s) have no label row: counted in 'no label', "
            "left out of the metrics"
        )
    if missing:
        notes.append("no scores of the model on: " + ", ".join(missing))
    last = summary["last_performance_retraining"]
    title = f"Realised performance of {summary['model_name']}, measured {summary['logical_date']}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f"<p>Score dates {summary['score_dates']['start']} .. {summary['score_dates']['end']} "
        f"(label horizon {summary['horizon_days']} days). Decision on "
        f'{summary["decision_date"]}: <span class="{html.escape(status)}">'
        f"{html.escape(status)}</span> (reasons: {html.escape(reasons)}).</p>\n"
        f"<p>Decay rule: ECE &gt; {thresholds['max_ece']} or ROC AUC below the version's "
        f"validation ROC AUC by more than {thresholds['max_auc_drop']}, on at least "
        f"{thresholds['min_rows']} labelled rows of both classes. Champion now: "
        f"v{_fmt(summary['champion_version'])}; last performance retraining: "
        f"{_fmt(last['as_of'] + ' (run ' + last['run_id'] + ')' if last else None)}.</p>\n"
        + "".join(f"<p>{html.escape(n)}</p>\n" for n in notes)
        + f"<table><tr>{head}</tr>{body}</table>\n"
        "<h2>Reliability (mean score against observed purchase rate, per ECE bin)</h2>\n"
        f'<div style="display:flex;flex-wrap:wrap;gap:1em">{plots}</div>\n'
        "</body>\n</html>\n"
    )


# -- the job -----------------------------------------------------------------------------------


def monitor_performance(
    spark: SparkSession, config: PerformanceConfig, client: MlflowClient | None = None
) -> dict[str, Any]:
    """Measure the score dates, replace their rows, write the page and the summary."""
    client = client or MlflowClient()
    figures, bins = measure(spark, config, client)
    rows = _table_rows(config, figures)
    frame = spark.createDataFrame(
        rows, ", ".join(f"{c.name} {c.type}" for c in MODEL_PERFORMANCE.columns)
    )
    # Not BETWEEN: Spark 4 rewrites it into an expression Delta's replaceWhere cannot resolve.
    predicate = (
        f"score_date >= DATE'{config.start}' AND score_date <= DATE'{config.end}' "
        f"AND model_name = '{_quoted(config.model_name)}'"
    )
    table = write_partition(
        spark, frame, MODEL_PERFORMANCE, config.catalog, predicate, config.monitoring_schema
    )
    summary = summary_of(
        config,
        figures,
        alias_version(client, config.model_name, "champion"),
        last_retraining(client, config.experiment, "performance"),
        table,
    )
    for suffix, text in (
        (".html", render_html(summary, bins)),
        (".json", json.dumps(summary, indent=2) + "\n"),
    ):
        path = Path(local_path(config.output + suffix))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return summary


def _quoted(value: str) -> str:
    """A model name inside a SQL string literal: quotes and backslashes escaped."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
