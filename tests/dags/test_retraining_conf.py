"""Drift-triggered retraining: the conf ``trigger_retraining`` sends, rendered as Airflow renders
it, and what ``model_training`` passes on to its job from that conf (or from its defaults).

Templates are rendered with the Task SDK's own template context of a run (params validated
against the run's conf, ``ds``, ``data_interval_*``, ``macros`` ...), as ``deploy.payloads`` does,
through ``task.render_template``, which leaves the DAG's tasks unchanged.
"""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag

from deploy import payloads
from ecom_airflow.config import LOCAL

MONTH = "2019-11-01"  # the drift run that checks November 2019
SUMMARY = "/Volumes/ecom/raw/reports/drift_detection/2019-11-01/feature_drift.json"
TRIGGERED = "2019-12-05"  # the logical date of the triggered training run (not the as-of date)


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    bag = DagBag(dag_folder=str(payloads.ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def _render(task, dag_run, value):
    return task.render_template(value, payloads.template_context(task, dag_run))


def _job_parameters(task, dag_run) -> dict[str, str]:
    """The rendered ``--flag value`` pairs of a ``DatabricksSubmitRunOperator`` task."""
    rendered = _render(task, dag_run, task.json)["tasks"][0]["spark_python_task"]["parameters"]
    assert all(p.startswith("--") for p in rendered[::2]), rendered  # no bare flags here
    return dict(zip(rendered[::2], rendered[1::2], strict=True))


def _training(task_id: str = "train_propensity_model"):
    """A task of ``model_training`` freshly parsed, as a task process parses it for its one run:
    merging a run's conf into the params sets the value of the DAG's own ``Param`` objects
    (shared with every copy of the task), which would carry one test's conf into the next."""
    bag = DagBag(dag_folder=str(payloads.ROOT / "dags" / "model_training.py"))
    assert bag.import_errors == {}
    dag = bag.dags["model_training"]
    return dag, dag.get_task(task_id)


def _training_run(dag, conf: dict[str, Any]):
    """A run of ``model_training`` triggered on ``TRIGGERED`` with ``conf``."""
    scheduled = payloads._scheduled_run(dag, TRIGGERED)
    return scheduled.model_copy(
        update={"run_id": "drift__test", "run_type": "manual", "conf": conf}
    )


def test_trigger_retraining_sends_the_reason_and_the_months_drift_summary(dagbag):
    dag = dagbag.dags["drift_detection"]
    dag_run = payloads._scheduled_run(dag, MONTH)
    assert dag_run.logical_date == pendulum.datetime(2019, 11, 1, tz="UTC")
    trigger = dag.get_task("trigger_retraining")

    conf = _render(trigger, dag_run, trigger.conf)
    assert conf == {"reason": "drift", "as_of": "2019-11-30", "drift_summary": SUMMARY}
    assert _render(trigger, dag_run, trigger.trigger_run_id) == "drift__2019-11-01"
    # The very file the drift job writes and the sensor decided on, for that month.
    detect = _job_parameters(dag.get_task("detect_drift"), dag_run)
    assert conf["drift_summary"] == detect["--output"] + ".json"
    check = dag.get_task("check_drift")
    assert conf["drift_summary"] == _render(check, dag_run, check.summary_path)
    # The training DAG accepts every key it is sent (no undeclared conf).
    assert set(conf) <= set(dagbag.dags["model_training"].params)


def test_training_passes_the_drift_conf_on_to_its_job(dagbag):
    dag, task = _training()
    conf = {"reason": "drift", "as_of": "2019-11-30", "drift_summary": SUMMARY}
    params = _job_parameters(task, _training_run(dag, conf))
    assert params["--reason"] == "drift"
    assert params["--drift-summary"] == SUMMARY
    assert params["--ds"] == "2019-11-30"
    assert params["--airflow-run-id"] == "drift__test"


def test_training_without_conf_falls_back_to_the_defaults(dagbag):
    dag, task = _training()
    params = _job_parameters(task, _training_run(dag, {}))
    assert params["--reason"] == "schedule"
    assert params["--drift-summary"] == "none"
    assert params["--ds"] == TRIGGERED
    # The scheduled run of the same date renders the same defaults.
    scheduled = payloads._scheduled_run(dag, TRIGGERED)
    assert scheduled.conf == {}
    params = _job_parameters(task, scheduled)
    assert (params["--reason"], params["--drift-summary"]) == ("schedule", "none")


def test_both_trainings_pass_their_environments_promotion_margin(dagbag):
    """The propensity model's ROC AUC margin and the recommender's precision@10 margin come from
    the environment (local here; dev and prod in ``tests/deploy/test_payloads.py``)."""
    for task_id, margin in (
        ("train_propensity_model", LOCAL.promotion_margin),
        ("train_recommender", LOCAL.recommender_promotion_margin),
    ):
        dag, task = _training(task_id)
        params = _job_parameters(task, payloads._scheduled_run(dag, TRIGGERED))
        assert params["--margin"] == str(margin), task_id


def test_training_params_describe_the_drift_summary(dagbag):
    param = dagbag.dags["model_training"].params.get_param("drift_summary")
    assert param.value is None
    assert param.description


def test_the_job_reads_the_rendered_conf_into_its_training_config():
    """The rendered parameters, parsed by ``train_models.py`` itself, reach its training config
    (``reason``, ``drift_summary`` and ``logical_date`` are tags of the MLflow run)."""
    import train_models

    given = {"reason": "drift", "as_of": "2019-11-30", "drift_summary": SUMMARY}
    for conf, expected in (
        (given, ("drift", SUMMARY, "2019-11-30", TRIGGERED)),
        ({}, ("schedule", "none", TRIGGERED, TRIGGERED)),
    ):
        dag, task = _training()
        rendered = _render(task, _training_run(dag, conf), task.json)
        args = train_models.arguments(rendered["tasks"][0]["spark_python_task"]["parameters"])
        config = train_models.training_config(args)
        assert (
            config.reason,
            config.drift_summary,
            config.windows.as_of.isoformat(),
            config.logical_date,
        ) == expected


PERFORMANCE_DS = "2019-11-08"
PERFORMANCE_SUMMARY = (
    "/Volumes/ecom/raw/reports/model_performance/2019-11-08/model_performance.json"
)


def test_performance_run_measures_ds_minus_the_horizon_and_triggers_with_its_summary(dagbag):
    dag = dagbag.dags["model_performance"]
    dag_run = payloads._scheduled_run(dag, PERFORMANCE_DS)
    monitor = _job_parameters(dag.get_task("monitor_performance"), dag_run)
    assert (monitor["--ds"], monitor["--start-ds"], monitor["--end-ds"]) == (
        PERFORMANCE_DS,
        "2019-11-01",
        "2019-11-01",
    )
    trigger = dag.get_task("trigger_retraining")
    conf = _render(trigger, dag_run, trigger.conf)
    assert conf == {
        "reason": "performance",
        "as_of": PERFORMANCE_DS,
        "drift_summary": PERFORMANCE_SUMMARY,
    }
    assert conf["drift_summary"] == monitor["--output"] + ".json"
    check = dag.get_task("check_performance")
    assert conf["drift_summary"] == _render(check, dag_run, check.summary_path)
    assert _render(trigger, dag_run, trigger.trigger_run_id) == "performance__2019-11-08"
    # model_training accepts every key, and the reason, it is sent.
    training = dagbag.dags["model_training"]
    assert set(conf) <= set(training.params)
    dag, task = _training()
    params = _job_parameters(task, _training_run(dag, conf))
    assert (params["--reason"], params["--ds"]) == ("performance", PERFORMANCE_DS)
    assert params["--drift-summary"] == PERFORMANCE_SUMMARY


def test_a_performance_backfill_range_comes_from_the_run_conf():
    bag = DagBag(dag_folder=str(payloads.ROOT / "dags" / "model_performance.py"))
    dag = bag.dags["model_performance"]
    scheduled = payloads._scheduled_run(dag, PERFORMANCE_DS)
    run = scheduled.model_copy(
        update={
            "run_id": "manual__range",
            "run_type": "manual",
            "conf": {"start_ds": "2019-10-01", "end_ds": "2019-10-31"},
        }
    )
    monitor = _job_parameters(dag.get_task("monitor_performance"), run)
    assert (monitor["--start-ds"], monitor["--end-ds"]) == ("2019-10-01", "2019-10-31")
