"""Airflow-side helpers shared by the DAGs: environment config and the Databricks task builder.

Cheap to import (standard library and the Databricks provider only), so DAG files stay fast to
parse; nothing here reads connections, variables or files at import time.
"""
