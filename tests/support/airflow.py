"""Helpers shared by the Airflow tests."""

from __future__ import annotations

from airflow.sdk import DAG


def serialize(dag: DAG) -> None:
    """dag.test() runs serialized DAGs; a DAG defined in a test is not in any bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def xcom(dag_id: str, run_id: str, task_id: str | None, key: str):
    """The value a task of a DAG run pushed under ``key`` (any task when ``task_id`` is None)."""
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    filters = {"dag_id": dag_id, "run_id": run_id, "key": key}
    if task_id is not None:
        filters["task_id"] = task_id
    with Session() as session:
        return XComModel.deserialize_value(session.query(XComModel).filter_by(**filters).one())


def task_dag_run(run_type: str, conf: dict | None = None, dag_id: str = "drift_detection"):
    """The Task SDK's ``DagRun`` a running task gets as ``context["dag_run"]`` (the execution
    API's model), for a run of ``run_type`` ("backfill", "manual", "scheduled") with ``conf``."""
    import pendulum
    from airflow.sdk.api.datamodels._generated import DagRun

    day = pendulum.datetime(2019, 12, 1, tz="UTC")
    return DagRun(
        dag_id=dag_id,
        run_id=f"{run_type}__{day.isoformat()}",
        logical_date=day,
        data_interval_start=day,
        data_interval_end=day,
        run_after=day,
        start_date=day,
        end_date=None,
        run_type=run_type,
        state="running",
        conf=conf,
        consumed_asset_events=[],
        partition_key=None,
    )
