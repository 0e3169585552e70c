"""Feature and prediction drift of a period against the champion's training data (Evidently 0.7).

**Current.** The offline feature rows (``silver.user_features``) with ``feature_date`` in the
period ``[start, end]``, and the period's scores from ``gold.propensity_scores`` when there are
any (every model version of the model that scored a date in the period).

**Reference.** The training window of the current champion: ``models:/<name>@champion`` is
resolved to a version, the version's source run (the winning candidate's nested run, which
carries the training's tags, as its parent run does) names the window in its tags
``train_window_start`` / ``train_window_end``, and the reference is the feature rows of those
dates. The reference scores are the champion's own scores on those dates, when
``gold.propensity_scores`` holds any; since serving scores each date with the champion *of that
day*, a champion rarely scored its own training window, and the score comparison is then skipped
with a note (the feature comparison does not depend on it).

**Bounded driver memory.** Evidently runs on pandas on the driver. Each side is sampled on Spark
to at most ``max_rows`` rows before ``toPandas()``: the rows with the smallest seeded hash
``xxhash64(user_id, feature_date, seed)`` (a top-k, computed per partition, never a full collect).
The hash makes it a uniform sample that picks the same rows on every run, so a rerun compares the
same data and writes the same figures. The counts reported are those of the whole windows.

**Tests per column.** Every feature is numerical and gets the same test, set explicitly:
the Wasserstein distance normed by the reference's standard deviation (``wasserstein``), drift
when it is ``>= 0.1``. Evidently 0.7 picks a test per column when none is set, and its choice
depends on the data: with at most 1000 reference rows a K-S (or, for <= 5 distinct values,
chi-square / Z) *p-value*, drift when below 0.05; above 1000 rows the normed Wasserstein (or,
for <= 5 distinct values, Jensen-Shannon) *distance*, drift when above 0.1. The score would then
flip meaning with the sample size and a p-value flags a negligible shift on 50 000 rows; a
distance in units of the reference's spread does neither. Evidently ignores nulls (NaN) in a
test, so a change in a feature's null rate alone is not drift; a feature with no value at all on
one side cannot be tested and is reported as skipped (outside the drift share). The score
comparison uses the same test and is reported next to the feature drift: it does not set the
status.

**Decision.** ``drift_share`` is Evidently's share of drifted feature columns
(``DriftedColumnsCount``); the status is ``drift`` when it is ``>= threshold`` (the DAG passes the
environment config's ``drift_share``, 0.1 like ``DriftConfig``'s default: at least 5 of the 43
feature columns). With fewer than
``min_rows`` rows on either side the status is ``insufficient_data``: nothing is compared and no
drift is claimed (with the default 1000 rows, the normed distance of two samples of one
distribution stays around 0.03-0.05, well under the 0.1 of a drifted column).

**Outputs.** ``<output>.html``: Evidently's report (``save_html``, a single self-contained file:
its JavaScript, font and data are inlined, nothing is fetched when it opens), or a short page
saying why nothing was compared; ``<output>.json``: the summary the drift sensor reads; rows in
``<catalog>.<monitoring>.drift_metrics`` (:data:`DRIFT_METRICS`): one per feature column, one for
the score (``column_name = 'score'``) when compared and one with ``column_name = '__dataset__'``
holding the drift share, all replaced for the period on a rerun (``replaceWhere`` on
``period_start`` and ``period_end``).

**Cooldown input.** The latest finished parent run of the training experiment tagged
``reason = drift`` (a training triggered by drift): its ``logical_date`` tag and run id.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
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
from clickstream.core.schema import parse_ds
from clickstream.core.volumes import local_path
from clickstream.models.registry import CHAMPION

STATTEST = "wasserstein"  # Evidently's "Wasserstein distance (normed)"
STATTEST_THRESHOLD = 0.1
SCORE = "score"
DATASET = "__dataset__"
SHARE_STATTEST = "share_of_drifted_columns"
_UNTESTED: dict[str, Any] = {"stattest": None, "score": None, "drifted": None}

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
    drift_share: float = 0.1
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


@dataclass(frozen=True)
class Reference:
    """The champion and its training window (the drift reference)."""

    model_name: str
    version: str
    run_id: str
    start: str
    end: str


# -- MLflow ------------------------------------------------------------------------------------


def champion_reference(client: MlflowClient, model_name: str) -> Reference:
    """``models:/<name>@champion`` and the training window its source run names."""
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as error:
        if error.error_code not in (
            "RESOURCE_DOES_NOT_EXIST",
            "INVALID_PARAMETER_VALUE",
            "NOT_FOUND",
        ):
            raise
        raise JobError(
            f"no champion for {model_name}: run model_training first (drift is measured against "
            "the champion's training window)"
        ) from None
    run_id = version.run_id or version.tags.get("run_id", "")
    # The version points at the winning candidate's nested run; it carries the training's tags,
    # as its parent run does, and so does the version itself (train_models sets all three).
    sources: list[dict[str, str]] = []
    if run_id:
        run = client.get_run(run_id)
        sources.append(run.data.tags)
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent:
            sources.append(client.get_run(parent).data.tags)
    sources.append(version.tags)
    for tags in sources:
        if tags.get("train_window_start") and tags.get("train_window_end"):
            start, end = parse_ds(tags["train_window_start"]), parse_ds(tags["train_window_end"])
            return Reference(model_name, str(version.version), run_id, start, end)
    raise JobError(
        f"champion v{version.version} of {model_name} names no training window (tags "
        f"train_window_start/train_window_end on run {run_id or '?'}): it was not registered "
        "by train_models"
    )


def last_drift_retraining(client: MlflowClient, experiment: str) -> dict[str, str] | None:
    """The latest finished training triggered by drift: a parent run tagged ``reason=drift``.

    Latest by its ``logical_date`` tag, then by start time; nested (candidate) runs carry the
    same tags and are excluded; a failed or unfinished training does not count.
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string="tags.reason = 'drift' AND tags.mlflow.parentRunId IS NULL "
        "AND attributes.status = 'FINISHED'",
        order_by=["tags.logical_date DESC", "attributes.start_time DESC"],
        max_results=20,
    )
    for run in runs:
        if "mlflow.parentRunId" not in run.data.tags:
            return {"logical_date": run.data.tags.get("logical_date"), "run_id": run.info.run_id}
    return None


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


# -- Evidently ---------------------------------------------------------------------------------


@dataclass
class Comparison:
    snapshot: Any
    drift_share: float
    columns: dict[str, dict[str, Any]]  # feature -> stattest, score, threshold, drifted[, note]
    score: dict[str, Any] | None  # the score column's result when compared


def _read_snapshot(result: dict[str, Any]) -> tuple[float, int, dict[str, dict[str, Any]]]:
    """(share, count, {column: stattest/threshold/score/drifted}) from ``snapshot.dict()``."""
    share, count, columns = None, None, {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":DriftedColumnsCount"):
            share, count = float(metric["value"]["share"]), int(metric["value"]["count"])
        elif config["type"].endswith(":ValueDrift"):
            columns[config["column"]] = {
                "stattest": config["method"],
                "score": float(metric["value"]),
                "threshold": float(config["threshold"]),
            }
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift") and params["column"] in columns:
            # Evidently's own verdict per column: the test fails when the column drifted.
            columns[params["column"]]["drifted"] = test["status"] == "FAIL"
    if share is None or count is None or any("drifted" not in c for c in columns.values()):
        raise RuntimeError("the Evidently snapshot lacks the drift share or a column's test")
    return share, count, columns


def compare(
    reference: pd.DataFrame, current: pd.DataFrame, drift_share: float, *, scores: bool
) -> Comparison:
    """Run the Evidently report: every testable feature, and the score column if ``scores``."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    testable, skipped = [], {}
    for column in FEATURE_COLUMNS:
        sides = (("reference", reference), ("current", current))
        empty = [n for n, side in sides if side[column].notna().sum() == 0]
        if empty:
            note = f"no value in the {' and '.join(empty)} sample: not tested"
            skipped[column] = {**_UNTESTED, "threshold": None, "note": note}
        else:
            testable.append(column)
    if not testable:
        raise JobError("no feature column has values on both sides: nothing to compare")
    numerical = testable + ([SCORE] if scores else [])
    definition = DataDefinition(numerical_columns=numerical)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=testable,
            drift_share=drift_share,
            num_method=STATTEST,
            num_threshold=STATTEST_THRESHOLD,
        )
    ]
    if scores:
        metrics.append(ValueDrift(column=SCORE, method=STATTEST, threshold=STATTEST_THRESHOLD))
    snapshot = Report(metrics, include_tests=True).run(
        reference_data=Dataset.from_pandas(reference[numerical], data_definition=definition),
        current_data=Dataset.from_pandas(current[numerical], data_definition=definition),
    )
    share, count, results = _read_snapshot(snapshot.dict())
    score = results.pop(SCORE, None)
    drifted = sum(1 for c in results.values() if c["drifted"])
    if drifted != count or set(results) != set(testable):
        raise RuntimeError(
            f"Evidently counts {count} drifted columns, its column tests {drifted}: the report "
            "does not read as expected (an Evidently API change?)"
        )
    columns = {c: results.get(c) or skipped[c] for c in FEATURE_COLUMNS}
    return Comparison(snapshot, share, columns, score)


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


def _insufficient_html(summary: dict[str, Any]) -> str:
    ref, cur = summary["reference"], summary["current"]
    lines = [
        f"Period {summary['period_start']}..{summary['period_end']}: not enough data to "
        "measure drift; nothing was compared and no drift is claimed.",
        f"Current feature rows: {cur['rows']}; reference feature rows (champion "
        f"v{ref['model_version']} training window {ref['start']}..{ref['end']}): {ref['rows']}; "
        f"at least {summary['min_rows']} are needed on each side.",
    ]
    body = "\n".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Feature drift: insufficient data</title></head>\n"
        f"<body><h1>Feature drift: insufficient data</h1>\n{body}\n</body></html>\n"
    )


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
    ref_rows = feature_rows(spark, *silver, reference.start, reference.end)
    cur_rows = feature_rows(spark, *silver, config.start, config.end)
    ref_count, cur_count = ref_rows.count(), cur_rows.count()
    print(f"feature rows: reference {ref_count}, current {cur_count} (min {config.min_rows})")
    sufficient = min(ref_count, cur_count) >= config.min_rows

    html_path, json_path = config.output + ".html", config.output + ".json"
    summary: dict[str, Any] = {
        "period_start": config.start,
        "period_end": config.end,
        "status": "insufficient_data",
        "drift_share": None,
        "threshold": config.drift_share,
        "sufficient": sufficient,
        "min_rows": config.min_rows,
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
            **_UNTESTED,
            "note": "not enough feature rows: nothing compared",
        },
        "last_drift_retraining": last_drift_retraining(client, config.experiment),
        "report": html_path,
        "table": DRIFT_METRICS.name(config.catalog, config.monitoring_schema),
    }
    comparison, counts = None, {}
    local_html = Path(local_path(html_path))
    local_html.parent.mkdir(parents=True, exist_ok=True)
    if sufficient:
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
        comparison.snapshot.save_html(str(local_html))
        drifted = [c for c, r in comparison.columns.items() if r["drifted"]]
        summary.update(
            status="drift" if comparison.drift_share >= config.drift_share else "no_drift",
            drift_share=comparison.drift_share,
            drifted_columns=drifted,
            columns=comparison.columns,
        )
        summary["reference"]["sampled_rows"] = len(ref_sample)
        summary["current"]["sampled_rows"] = len(cur_sample)
        summary["scores"] = {"compared": scored, **_UNTESTED, "note": note}
        if comparison.score is not None:
            summary["scores"].update(
                {k: comparison.score[k] for k in ("stattest", "score", "threshold", "drifted")}
            )
    else:
        local_html.write_text(_insufficient_html(summary), encoding="utf-8")

    rows = _metric_rows(config, reference, summary, comparison, counts)
    frame = spark.createDataFrame(
        rows, ", ".join(f"{c.name} {c.type}" for c in DRIFT_METRICS.columns)
    )
    predicate = f"period_start = DATE'{config.start}' AND period_end = DATE'{config.end}'"
    write_partition(
        spark, frame, DRIFT_METRICS, config.catalog, predicate, config.monitoring_schema
    )
    local_json = Path(local_path(json_path))
    local_json.parent.mkdir(parents=True, exist_ok=True)
    local_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
