"""One training of the purchase-propensity model, tracked in MLflow and decided in the registry.

MLflow layout of a training: a parent run ``propensity <as_of>`` with one nested run per
candidate. Each candidate run has its parameters, validation metrics, plots (ROC,
precision-recall, calibration, feature importance) and the model with its signature and an
input example. The parent run carries the lineage tags (logical date, Airflow run id, git
commit, the run's reason and the drift summary that triggered it, Delta versions of the tables
read, train and validation windows), the comparison with the champion and the recency baseline,
the oracle figures when the generator's ground truth is available, and the promotion decision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from clickstream.core.contracts import USER_FEATURES, USER_LABELS, table_version
from clickstream.core.volumes import local_path
from clickstream.models import registry
from clickstream.models.promotion import Decision, decide
from clickstream.models.propensity.candidates import (
    SKOPS_TRUSTED_TYPES,
    candidates,
    feature_importance,
)
from clickstream.models.propensity.data import (
    LABEL,
    TrainingDataError,
    Windows,
    bounded_pandas,
    check_trainable,
    features_frame,
    labelled_rows,
)
from clickstream.models.propensity.evaluation import (
    lift_capture,
    metrics,
    oracle_auc,
    recency_baseline,
)


@dataclass(frozen=True)
class TrainingConfig:
    model_name: str
    experiment: str
    windows: Windows
    max_rows: int = 200_000
    margin: float = 0.002
    seed: int = 0
    reason: str = "schedule"
    drift_summary: str = "none"
    logical_date: str | None = None  # the Airflow run's; default: the as-of date
    airflow_run_id: str = "manual"
    git_commit: str = "unknown"
    ground_truth: str | None = None


@dataclass(frozen=True)
class LabelledData:
    """The two windows as model inputs, and what the run logs about how they were read."""

    x_train: pd.DataFrame
    y_train: np.ndarray
    x_val: pd.DataFrame
    y_val: np.ndarray
    validation: pd.DataFrame  # the validation rows as read: their users meet the ground truth
    versions: dict[str, int]  # the Delta version of each table read
    sampling: dict[str, Any]  # rows and sampling fraction of each window


@dataclass(frozen=True)
class Evaluation:
    """The best candidate next to the recency baseline and the current champion, decided."""

    best: str
    best_auc: float
    baseline_auc: float
    champion_auc: float | None
    decision: Decision


def _plots(pipeline, x: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    for name, draw in (
        ("roc", lambda ax: RocCurveDisplay.from_predictions(y, p, ax=ax)),
        ("precision_recall", lambda ax: PrecisionRecallDisplay.from_predictions(y, p, ax=ax)),
        ("calibration", lambda ax: CalibrationDisplay.from_predictions(y, p, n_bins=10, ax=ax)),
    ):
        fig, ax = plt.subplots(figsize=(5, 4))
        draw(ax)
        mlflow.log_figure(fig, f"plots/{name}.png")
        plt.close(fig)
    importance = feature_importance(pipeline, x).head(20)
    fig, ax = plt.subplots(figsize=(6, 6))
    importance.iloc[::-1].plot.barh(ax=ax)
    ax.set_title("feature importance (top 20)")
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/feature_importance.png")
    plt.close(fig)


def _oracle(config: TrainingConfig, val: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """AUC of the generator's true propensity on the validation rows (synthetic data only)."""
    if not config.ground_truth:
        return {}
    path = local_path(config.ground_truth)
    if not os.path.exists(path):
        print(f"no ground truth at {config.ground_truth}: oracle figures skipped")
        return {}
    truth = pd.read_csv(path, dtype={"user_id": "int64"})
    joined = val[["user_id"]].merge(truth, on="user_id", how="left")
    if joined["purchase_propensity"].isna().any():
        print("ground truth does not cover every validation user: oracle figures skipped")
        return {}
    return {"oracle_roc_auc": oracle_auc(y, joined["purchase_propensity"].to_numpy())}


def _read_windows(spark, catalog: str, schema: str, windows: Windows) -> dict[str, Any]:
    features_name = USER_FEATURES.name(catalog, schema)
    labels_name = USER_LABELS.name(catalog, schema)
    for name in (features_name, labels_name):
        if not spark.catalog.tableExists(name):
            raise TrainingDataError(
                f"{name} does not exist: run the offline_feature_table DAG first"
            )
    versions = {features_name: table_version(spark, features_name)}
    versions[labels_name] = table_version(spark, labels_name)
    # Read the versions recorded, so the lineage tags name exactly what was trained on.
    features = spark.sql(f"SELECT * FROM {features_name} VERSION AS OF {versions[features_name]}")
    labels = spark.sql(f"SELECT * FROM {labels_name} VERSION AS OF {versions[labels_name]}")
    return {
        "versions": versions,
        "train": labelled_rows(features, labels, *windows.train, windows.horizon_days),
        "validation": labelled_rows(features, labels, *windows.validation, windows.horizon_days),
    }


def _labelled_data(spark, config: TrainingConfig, catalog: str, schema: str) -> LabelledData:
    """Both windows, sampled to the driver's bound and checked to hold both label classes."""
    windows = config.windows
    data = _read_windows(spark, catalog, schema, windows)
    train_df, train_fraction, train_rows = bounded_pandas(
        data["train"], config.max_rows, config.seed
    )
    val_df, val_fraction, val_rows = bounded_pandas(
        data["validation"], config.max_rows, config.seed + 1
    )
    check_trainable(train_df[LABEL].to_numpy(), "training", *windows.train)
    check_trainable(val_df[LABEL].to_numpy(), "validation", *windows.validation)
    return LabelledData(
        x_train=features_frame(train_df),
        y_train=train_df[LABEL].to_numpy(),
        x_val=features_frame(val_df),
        y_val=val_df[LABEL].to_numpy(),
        validation=val_df,
        versions=data["versions"],
        sampling={
            "train_rows": train_rows,
            "train_sample_fraction": round(train_fraction, 6),
            "validation_rows": val_rows,
            "validation_sample_fraction": round(val_fraction, 6),
        },
    )


def _run_tags(config: TrainingConfig, versions: dict[str, int]) -> dict[str, str]:
    """The lineage tags of the parent run and of every candidate run."""
    windows = config.windows
    return {
        **windows.tags(),
        "logical_date": config.logical_date or windows.as_of.isoformat(),
        "airflow_run_id": config.airflow_run_id,
        "git_commit": config.git_commit,
        "reason": config.reason,
        "drift_summary": config.drift_summary,
        "model_name": config.model_name,
        **{f"delta_version.{table}": str(v) for table, v in versions.items()},
    }


def _fit_candidate(name: str, pipeline, data: LabelledData, tags: dict[str, str]) -> dict[str, Any]:
    """Fit one candidate in a nested run that logs its parameters, metrics, plots and model."""
    with mlflow.start_run(run_name=name, nested=True, tags=tags) as child:
        pipeline.fit(data.x_train, data.y_train)
        p_val = pipeline.predict_proba(data.x_val)[:, 1]
        candidate_metrics = metrics(data.y_val, p_val)
        mlflow.log_params(
            {
                f"model.{k}": v
                for k, v in pipeline.named_steps["model"].get_params().items()
                if isinstance(v, (int, float, str, bool)) or v is None
            }
        )
        mlflow.log_metrics(candidate_metrics)
        _plots(pipeline, data.x_train, data.y_val, p_val)
        example = data.x_val.head(5)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, pipeline.predict_proba(example)[:, 1]),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
        print(f"{name}: " + ", ".join(f"{k}={v:.4f}" for k, v in candidate_metrics.items()))
        return {
            "metrics": candidate_metrics,
            "model_uri": info.model_uri,
            "run_id": child.info.run_id,
        }


def _evaluate(
    client: MlflowClient,
    config: TrainingConfig,
    data: LabelledData,
    scored: dict[str, dict[str, Any]],
) -> Evaluation:
    """The best candidate against the champion (on the same rows) or the recency baseline."""
    best = max(scored, key=lambda n: scored[n]["metrics"]["roc_auc"])
    best_auc = scored[best]["metrics"]["roc_auc"]
    baseline = metrics(data.y_val, recency_baseline(data.x_val))
    champion_version = registry.alias_version(client, config.model_name, registry.CHAMPION)
    champion_auc = None
    if champion_version is not None:
        champion_model = mlflow.sklearn.load_model(
            f"models:/{config.model_name}/{champion_version}"
        )
        champion_p = champion_model.predict_proba(data.x_val)[:, 1]
        champion_auc = metrics(data.y_val, champion_p)["roc_auc"]
    decision = decide(
        best_auc,
        champion_auc=champion_auc,
        champion_version=champion_version,
        baseline_auc=baseline["roc_auc"],
        margin=config.margin,
    )
    return Evaluation(best, best_auc, baseline["roc_auc"], champion_auc, decision)


def _register(
    client: MlflowClient,
    config: TrainingConfig,
    candidate: dict[str, Any],
    tags: dict[str, str],
    evaluation: Evaluation,
) -> tuple[str, str | None]:
    """Register the best candidate as challenger and apply the decision; (version, replaced)."""
    version = registry.register_challenger(
        client,
        config.model_name,
        candidate["model_uri"],
        candidate["run_id"],
        {
            "candidate": evaluation.best,
            **{k: v for k, v in tags.items() if not k.startswith("delta")},
        },
    )
    replaced = registry.record_decision(
        client,
        config.model_name,
        version,
        promote=evaluation.decision.promote,
        reason=evaluation.decision.reason,
    )
    return version, replaced


def _summary(
    config: TrainingConfig, data: LabelledData, evaluation: Evaluation
) -> dict[str, float]:
    """The parent run's metrics: challenger, baseline, champion and, with ground truth, oracle."""
    best_auc, champion_auc = evaluation.best_auc, evaluation.champion_auc
    summary = {
        "challenger_roc_auc": best_auc,
        "baseline_roc_auc": evaluation.baseline_auc,
        **({"champion_roc_auc": champion_auc} if champion_auc is not None else {}),
        **_oracle(config, data.validation, data.y_val),
    }
    # The quality bar is the serving model's: the challenger when it won, else the champion.
    serving_auc = best_auc if evaluation.decision.promote else champion_auc
    if serving_auc is not None:
        summary["champion_after_roc_auc"] = serving_auc
    if "oracle_roc_auc" in summary:
        oracle = summary["oracle_roc_auc"]
        summary["challenger_lift_capture"] = lift_capture(best_auc, oracle)
        if serving_auc is not None:
            summary["lift_capture"] = lift_capture(serving_auc, oracle)
    return summary


def train_propensity(spark, config: TrainingConfig, catalog: str, schema: str) -> dict[str, Any]:
    """Train, track, register and decide; returns the figures for the job's log."""
    data = _labelled_data(spark, config, catalog, schema)
    mlflow.set_experiment(config.experiment)
    client = MlflowClient()
    tags = _run_tags(config, data.versions)
    with mlflow.start_run(run_name=f"propensity {config.windows.as_of}", tags=tags) as parent:
        mlflow.log_params(
            {"max_rows": config.max_rows, **data.sampling, "promotion_margin": config.margin}
        )
        scored = {
            name: _fit_candidate(name, pipeline, data, tags)
            for name, pipeline in candidates(config.seed).items()
        }
        evaluation = _evaluate(client, config, data, scored)
        decision = evaluation.decision
        version, replaced = _register(client, config, scored[evaluation.best], tags, evaluation)
        summary = _summary(config, data, evaluation)
        mlflow.log_metrics(summary)
        mlflow.set_tags(
            {
                "best_candidate": evaluation.best,
                "challenger_version": version,
                "decision": "promoted" if decision.promote else "kept",
                "decision_reason": decision.reason,
                "champion_before": replaced or "none",
                "champion_after": version if decision.promote else (replaced or "none"),
            }
        )
    return {
        "tags": tags,
        "summary": summary,
        "decision": decision,
        "version": version,
        "best": evaluation.best,
        "candidates": {n: s["metrics"] for n, s in scored.items()},
        "parent_run_id": parent.info.run_id,
    }
