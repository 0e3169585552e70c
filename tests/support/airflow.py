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
