"""Feature and prediction drift of a period against the champion's training data (Evidently 0.7).

**Current.** The offline feature rows (``silver.user_features``) with ``feature_date`` in the
period ``[start, end]``, and the period's scores from ``gold.propensity_scores`` when there are
any (every model version of the model that scored a date in the period).

**Reference.** The feature rows of the current champion's training window (found in MLflow by
:mod:`clickstream.monitoring.drift_reference`). The reference scores are the champion's own
scores on those dates, when ``gold.propensity_scores`` holds any; since serving scores each date
with the champion *of that day*, a champion rarely scored its own training window, and the score
comparison is then skipped with a note (the feature comparison does not depend on it).

**Bounded driver memory.** Evidently runs on pandas on the driver. Each side is sampled on Spark
to at most ``max_rows`` rows before ``toPandas()``: the rows with the smallest seeded hash
``xxhash64(user_id, feature_date, seed)`` (a top-k, computed per partition, never a full collect).
The hash makes it a uniform sample that picks the same rows on every run, so a rerun compares the
same data and writes the same figures. The counts reported are those of the whole windows.

**Tests per column.** Every feature column, and the score, gets the same explicit test: the
Wasserstein distance normed by the reference's standard deviation, drift when it is ``>= 0.075``;
a feature with no value on one side is reported as skipped (why this test, and not Evidently's
default choice: :mod:`clickstream.monitoring.drift_report`).

**Decision.** ``drift_share`` is Evidently's share of drifted feature columns
(``DriftedColumnsCount``); the status is ``drift`` when it is ``>= threshold`` (the DAG passes the
environment config's ``drift_share``, 0.046 like ``DriftConfig``'s default: at least 2 of the 43
feature columns, calibrated in ``docs/drift_calibration.md``). With fewer than
``min_rows`` rows on either side the status is ``insufficient_data``: nothing is compared and no
drift is claimed (with the default 1000 rows, the normed distance of two samples of one
distribution stays around 0.03-0.05, under the 0.075 of a drifted column).

**Outputs.** ``<output>.html``: Evidently's report (``save_html``, a single self-contained file:
its JavaScript, font and data are inlined, nothing is fetched when it opens), or a short page
saying why nothing was compared; ``<output>.json``: the summary the drift sensor reads; rows in
``<catalog>.<monitoring>.drift_metrics`` (:data:`DRIFT_METRICS`): one per feature column, one for
the score (``column_name = 'score'``) when compared and one with ``column_name = '__dataset__'``
holding the drift share, all replaced for the period on a rerun (``replaceWhere`` on
``period_start`` and ``period_end``).

**Maturity.** A feature date is mature when its whole 30-day window lies inside the data
(:mod:`clickstream.core.maturity`: from ``mature_from(first ingest date of silver.events)`` on).
Both sides use their mature dates only: the immature dates of the reference window or of the
period are skipped with a printed message and a note in the summary (``maturity``), since a
truncated 30-day window "drifts" against a full one with no drift at all. When no mature date
remains on a side, the status is ``insufficient_data`` with the reason in ``reason``: nothing is
compared and no drift is claimed.

**Cooldown input.** The latest finished parent run of the training experiment tagged
``reason = drift`` (a training triggered by drift): its ``as_of`` tag (data time) and run id,
``clickstream.models.retraining.last_retraining``, which the performance monitor shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import (
    FEATURE_COLUMNS,
    PROPENSITY_SCORES,
    USER_FEATURES,
    Column,
    Contract,
    write_partition,
)
from clickstream.core.jobs import JobError
from clickstream.core.maturity import MATURITY_DAYS, first_data_date, mature_from
from clickstream.core.schema import parse_ds
from clickstream.core.volumes import local_path
from clickstream.models.retraining import last_retraining
from clickstream.monitoring.drift_reference import Reference, champion_reference
from clickstream.monitoring.drift_report import (
    SCORE,
    UNTESTED,
    Comparison,
    compare,
    insufficient_html,
)

DATASET = "__dataset__"
SHARE_STATTEST = "share_of_drifted_columns"

DRIFT_METRICS = Contract(
    schema="monitoring",
    table="drift_metrics",
    comment="drift of each feature column (and of the scores) in a period against the "
    "champion's training window; one row __dataset__ per period holds the drift share",
    columns=(
        Column("period_start", "date", False),
        Column("period_end", "date", False),
        Column("column_name", "string", False, "a feature column, 'score' or '__dataset__'"),
        Column("kind", "string", False, "feature, prediction or dataset"),
        Column("stattest", "string", True, "null when the column could not be tested"),
        Column("score", "double", True, "test value (dataset: share of drifted features)"),
        Column("threshold", "double", True, "drift when score >= threshold"),
        Column("drifted", "boolean", True, "null when not decided (skipped, insufficient)"),
        Column("status", "string", False, "status of the period: drift, no_drift, ..."),
        Column("reference_start", "date", False, "champion's training window"),
        Column("reference_end", "date", False),
        Column("reference_rows", "bigint", False, "feature rows in the reference window"),
        Column("current_rows", "bigint", False, "feature rows in the period"),
        Column("reference_sampled", "bigint", False, "reference values compared (non-null)"),
        Column("current_sampled", "bigint", False, "current values compared (non-null)"),
        Column("model_name", "string", False),
        Column("model_version", "string", False, "the champion version of the reference"),
        Column("airflow_run_id", "string", False),
    ),
)


@dataclass(frozen=True)
class DriftConfig:
    start: str
    end: str
    catalog: str
    model_name: str
    experiment: str
    output: str  # path without extension: <output>.html and <output>.json are written
    silver_schema: str = "silver"
    gold_schema: str = "gold"
    monitoring_schema: str = "monitoring"
    drift_share: float = 0.046  # Environment.drift_share (docs/drift_calibration.md)
    min_rows: int = 1000
    max_rows: int = 50_000
    seed: int = 0
    airflow_run_id: str = "manual"

    def __post_init__(self) -> None:
        start, end = parse_ds(self.start), parse_ds(self.end)
        if end < start:
            raise ValueError(f"--end-ds {end} is before --start-ds {start}")
        if not 0.0 < self.drift_share <= 1.0:
            raise ValueError(f"--drift-share must be in (0, 1], got {self.drift_share}")
        if self.min_rows < 1:
            raise ValueError(f"--min-rows must be at least 1, got {self.min_rows}")
        if self.max_rows < self.min_rows:
            raise ValueError(
                f"--max-rows {self.max_rows} is below --min-rows {self.min_rows}: the sample "
                "could never be sufficient"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)


# -- MLflow ------------------------------------------------------------------------------------


# -- Spark -------------------------------------------------------------------------------------


def _between(column: str, start: str, end: str):
    return F.col(column).between(F.lit(start).cast("date"), F.lit(end).cast("date"))


def feature_rows(spark: SparkSession, catalog: str, schema: str, start: str, end: str) -> DataFrame:
    """(user_id, feature_date, every feature as double) of the feature dates [start, end]."""
    name = USER_FEATURES.name(catalog, schema)
    if not spark.catalog.tableExists(name):
        raise JobError(f"{name} does not exist: run the offline_feature_table DAG first")
    return (
        spark.table(name)
        .where(_between("feature_date", start, end))
        .select("user_id", "feature_date", *(F.col(c).cast("double") for c in FEATURE_COLUMNS))
    )


def with_scores(rows: DataFrame, scores: DataFrame | None) -> DataFrame:
    """``rows`` with the score of the same user and date (null when unscored).

    ``gold.propensity_scores`` holds one scoring per ``score_date`` (each run replaces its date),
    so ``(user_id, score_date)`` is a key and the left join keeps one row per feature row.
    """
    if scores is None:
        return rows.withColumn(SCORE, F.lit(None).cast("double"))
    keyed = scores.select(
        "user_id", F.col("score_date").alias("feature_date"), F.col("score").cast("double")
    )
    return rows.join(keyed, ["user_id", "feature_date"], "left")


def bounded_sample(df: DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows as pandas: those with the smallest seeded hash of the key.

    Deterministic (the same rows on every run) and uniform; Spark keeps the top ``max_rows``
    per partition and merges them, so the driver never holds more than a few samples.
    """
    key = F.xxhash64(F.col("user_id"), F.col("feature_date"), F.lit(seed))
    sample = (
        df.withColumn("_sample_key", key)
        .orderBy("_sample_key", "user_id", "feature_date")
        .limit(max_rows)
        .drop("_sample_key")
        .toPandas()
    )
    numeric = [c for c in sample.columns if c not in ("user_id", "feature_date")]
    sample[numeric] = sample[numeric].astype("float64")
    return sample.sort_values(["feature_date", "user_id"], ignore_index=True)


# -- maturity ----------------------------------------------------------------------------------


def mature_side(side: str, start: str, end: str, data_start: date | None) -> dict[str, Any]:
    """The mature part of the window ``[start, end]`` of ``side`` (reference or current).

    ``compared_start``/``compared_end``: the mature feature dates compared (None when none is
    mature), ``skipped_days``: the immature dates left out, ``note``: why (None when nothing was
    skipped).
    """
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    days = (last - first).days + 1
    result: dict[str, Any] = {"start": start, "end": end, "skipped_days": 0, "note": None}
    if data_start is None:
        result.update(compared_start=None, compared_end=None, skipped_days=days)
        result["note"] = (
            f"the {side} window {start}..{end} cannot be checked for maturity: silver.events is "
            "empty or missing, so no feature date is known to be mature"
        )
        return result
    mature = max(first, mature_from(data_start))
    if mature > last:
        result.update(compared_start=None, compared_end=None, skipped_days=days)
        result["note"] = (
            f"the {side} window {start}..{end} has no mature feature date: the data begins on "
            f"{data_start}, so the first date whose {MATURITY_DAYS}-day window lies inside the "
            f"data is {mature_from(data_start)}"
        )
        return result
    result.update(compared_start=mature.isoformat(), compared_end=end)
    if mature > first:
        result["skipped_days"] = (mature - first).days
        result["note"] = (
            f"the {side} window {start}..{end}: skipped {result['skipped_days']} immature "
            f"feature date(s) {start}..{mature - timedelta(days=1)} (the data begins on "
            f"{data_start}; a date's {MATURITY_DAYS}-day window must lie inside the data); "
            f"compared {mature}..{end}"
        )
    return result


def maturity_summary(config: DriftConfig, reference: Reference, data_start: date | None) -> dict:
    """The ``maturity`` entry of the summary: the data start and each side's mature part."""
    return {
        "data_start": data_start.isoformat() if data_start else None,
        "first_mature": mature_from(data_start).isoformat() if data_start else None,
        "reference": mature_side("reference", reference.start, reference.end, data_start),
        "current": mature_side("current", config.start, config.end, data_start),
    }


# -- the job -----------------------------------------------------------------------------------


def score_rows(spark, config: DriftConfig, reference: Reference):
    """(reference scores, current scores, note); both None when there is nothing to compare."""
    name = PROPENSITY_SCORES.name(config.catalog, config.gold_schema)
    if not spark.catalog.tableExists(name):
        return None, None, f"{name} does not exist: score comparison skipped"
    table = spark.table(name).where(F.col("model_name") == config.model_name)
    ref = table.where(
        (F.col("model_version") == reference.version)
        & _between("score_date", reference.start, reference.end)
    )
    cur = table.where(_between("score_date", config.start, config.end))
    if ref.limit(1).count() == 0:
        note = (
            f"no scores by champion v{reference.version} on its training window "
            f"{reference.start}..{reference.end} (each date is scored by the champion of its "
            "day): score comparison skipped"
        )
        return None, None, note
    versions = sorted(r[0] for r in cur.select("model_version").distinct().collect())
    if not versions:
        return None, None, f"no scores in {config.start}..{config.end}: score comparison skipped"
    note = (
        f"scores of champion v{reference.version} on {reference.start}..{reference.end} vs "
        f"scores in {config.start}..{config.end} by version(s) {', '.join(versions)}"
    )
    return ref, cur, note


def _metric_rows(config, reference, summary, comparison, counts) -> list[tuple]:
    status = summary["status"]
    common_tail = (config.model_name, reference.version, config.airflow_run_id)
    period = (date.fromisoformat(config.start), date.fromisoformat(config.end))
    window = (date.fromisoformat(reference.start), date.fromisoformat(reference.end))

    totals = (summary["reference"]["rows"], summary["current"]["rows"])

    def row(column: str, kind: str, result: dict[str, Any], compared: tuple) -> tuple:
        test = tuple(result[k] for k in ("stattest", "score", "threshold", "drifted"))
        sizes = (*totals, *compared)
        return (*period, column, kind, *test, status, *window, *sizes, *common_tail)

    dataset = {"stattest": SHARE_STATTEST, "score": None, "threshold": config.drift_share}
    if comparison is None:
        return [row(DATASET, "dataset", {**dataset, "drifted": None}, (0, 0))]
    rows = [row(c, "feature", r, counts[c]) for c, r in comparison.columns.items()]
    if comparison.score is not None:
        rows.append(row(SCORE, "prediction", comparison.score, counts[SCORE]))
    dataset.update(score=comparison.drift_share, drifted=status == "drift")
    sampled = (summary["reference"]["sampled_rows"], summary["current"]["sampled_rows"])
    rows.append(row(DATASET, "dataset", dataset, sampled))
    return rows


def _insufficient_summary(
    config: DriftConfig,
    reference: Reference,
    rows: tuple[int, int],
    retraining: dict[str, str] | None,
    table: str,
    maturity: dict[str, Any],
) -> dict[str, Any]:
    """The summary of the period as it stands when nothing is compared (``insufficient_data``,
    with the ``reason``); :func:`_compare_windows` records the comparison in it when both sides
    have mature dates and enough rows."""
    ref_count, cur_count = rows
    immature = [
        maturity[side]["note"]
        for side in ("reference", "current")
        if maturity[side]["compared_start"] is None
    ]
    if immature:
        reason = "; ".join(immature) + ": nothing compared"
    elif min(ref_count, cur_count) < config.min_rows:
        reason = (
            f"fewer than {config.min_rows} mature feature rows on a side (reference "
            f"{ref_count}, current {cur_count}): nothing compared"
        )
    else:
        reason = None
    return {
        "period_start": config.start,
        "period_end": config.end,
        "status": "insufficient_data",
        "reason": reason,
        "drift_share": None,
        "threshold": config.drift_share,
        "sufficient": reason is None,
        "min_rows": config.min_rows,
        "maturity": maturity,
        "drifted_columns": [],
        "columns": {},
        "reference": {
            "start": reference.start,
            "end": reference.end,
            "rows": ref_count,
            "sampled_rows": 0,
            "model_name": config.model_name,
            "model_version": reference.version,
            "run_id": reference.run_id,
        },
        "current": {"rows": cur_count, "sampled_rows": 0},
        "scores": {
            "compared": False,
            **UNTESTED,
            "note": "not enough mature feature rows: nothing compared",
        },
        "last_drift_retraining": retraining,
        "report": config.output + ".html",
        "table": table,
    }


def _compare_windows(
    spark: SparkSession,
    config: DriftConfig,
    reference: Reference,
    rows: tuple[DataFrame, DataFrame],
    summary: dict[str, Any],
    report: Path,
) -> tuple[Comparison, dict[str, tuple[int, int]]]:
    """Sample both windows, compare them (the scores too when both samples hold enough), save
    Evidently's report to ``report`` and record the outcome in ``summary``; the comparison and
    the values compared per column (reference, current)."""
    ref_rows, cur_rows = rows
    ref_scores, cur_scores, note = score_rows(spark, config, reference)
    ref_sample = bounded_sample(with_scores(ref_rows, ref_scores), config.max_rows, config.seed)
    cur_sample = bounded_sample(with_scores(cur_rows, cur_scores), config.max_rows, config.seed)
    counts = {
        c: (int(ref_sample[c].notna().sum()), int(cur_sample[c].notna().sum()))
        for c in (*FEATURE_COLUMNS, SCORE)
    }
    scored = ref_scores is not None and min(counts[SCORE]) >= config.min_rows
    if ref_scores is not None and not scored:
        note = (
            f"only {counts[SCORE][0]} reference and {counts[SCORE][1]} current scores in "
            f"the samples (min {config.min_rows}): score comparison skipped"
        )
    comparison = compare(ref_sample, cur_sample, config.drift_share, scores=scored)
    comparison.snapshot.save_html(str(report))
    drifted = [c for c, r in comparison.columns.items() if r["drifted"]]
    summary.update(
        status="drift" if comparison.drift_share >= config.drift_share else "no_drift",
        drift_share=comparison.drift_share,
        drifted_columns=drifted,
        columns=comparison.columns,
    )
    summary["reference"]["sampled_rows"] = len(ref_sample)
    summary["current"]["sampled_rows"] = len(cur_sample)
    summary["scores"] = {"compared": scored, **UNTESTED, "note": note}
    if comparison.score is not None:
        summary["scores"].update(
            {k: comparison.score[k] for k in ("stattest", "score", "threshold", "drifted")}
        )
    return comparison, counts


def detect_drift(
    spark: SparkSession, config: DriftConfig, client: MlflowClient | None = None
) -> dict[str, Any]:
    """Compare the period with the champion's training window; write report, summary, rows."""
    client = client or MlflowClient()
    reference = champion_reference(client, config.model_name)
    print(
        f"reference: {config.model_name} champion v{reference.version} (run {reference.run_id}), "
        f"training window {reference.start}..{reference.end}"
    )
    silver = (config.catalog, config.silver_schema)
    maturity = maturity_summary(config, reference, first_data_date(spark, *silver))
    frames, counts = [], []
    for side in ("reference", "current"):
        window = maturity[side]
        if window["note"]:
            print(f"maturity: {window['note']}")
        if window["compared_start"] is None:
            frames.append(None)
            counts.append(0)
            continue
        frame = feature_rows(spark, *silver, window["compared_start"], window["compared_end"])
        frames.append(frame)
        counts.append(frame.count())
    ref_rows, cur_rows = frames
    ref_count, cur_count = counts
    print(
        f"mature feature rows: reference {ref_count}, current {cur_count} (min {config.min_rows})"
    )
    summary = _insufficient_summary(
        config,
        reference,
        (ref_count, cur_count),
        last_retraining(client, config.experiment, "drift"),
        DRIFT_METRICS.name(config.catalog, config.monitoring_schema),
        maturity,
    )
    comparison, counts = None, {}
    local_html = Path(local_path(summary["report"]))
    local_html.parent.mkdir(parents=True, exist_ok=True)
    if summary["sufficient"]:
        comparison, counts = _compare_windows(
            spark, config, reference, (ref_rows, cur_rows), summary, local_html
        )
    else:
        local_html.write_text(insufficient_html(summary), encoding="utf-8")

    rows = _metric_rows(config, reference, summary, comparison, counts)
    frame = spark.createDataFrame(
        rows, ", ".join(f"{c.name} {c.type}" for c in DRIFT_METRICS.columns)
    )
    predicate = f"period_start = DATE'{config.start}' AND period_end = DATE'{config.end}'"
    write_partition(
        spark, frame, DRIFT_METRICS, config.catalog, predicate, config.monitoring_schema
    )
    local_json = Path(local_path(config.output + ".json"))
    local_json.parent.mkdir(parents=True, exist_ok=True)
    local_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
