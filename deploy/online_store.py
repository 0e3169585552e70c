"""``python -m deploy.online_store``: create the synced online table of an environment.

    python -m deploy.online_store --env prod --database-instance ecom-online \\
        --logical-database ecom [--dry-run]

Creates, through the Databricks SDK (``WorkspaceClient().database.create_synced_database_table``,
authenticated as the SDK's environment or config profile says), a Lakebase synced table
``<catalog>.gold.user_features_online_synced`` over ``<catalog>.gold.user_features_online``:
primary key ``user_id``, ``TRIGGERED`` scheduling (each sync is started by the online DAG's
``sync_online_store`` task), reading the source table's change data feed. Prints the sync
pipeline's id: set it as ``ECOM_ONLINE_SYNC_PIPELINE_ID`` on the Airflow deployment. Run the
set-up job first (``spark_jobs/setup_catalog.py``: the source table with its change data feed
and primary key). ``--dry-run`` prints the request body and sends nothing. An existing synced
table is an error from the API (``ALREADY_EXISTS``), shown in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from deploy.environment import ROOT, importable

SYNCED_SUFFIX = "_synced"


def _job_library() -> None:
    """``spark_jobs/`` on ``sys.path`` (the table contracts), besides include/ and plugins/."""
    importable()
    if str(ROOT / "spark_jobs") not in sys.path:
        sys.path.insert(0, str(ROOT / "spark_jobs"))


def synced_table(catalog: str, database_instance: str, logical_database: str) -> dict[str, Any]:
    """The request body of the synced table over the online feature table of ``catalog``."""
    _job_library()
    from clickstream.core.contracts import ONLINE_FEATURES

    source = ONLINE_FEATURES.name(catalog)
    return {
        "name": source + SYNCED_SUFFIX,
        "database_instance_name": database_instance,
        "logical_database_name": logical_database,
        "spec": {
            "source_table_full_name": source,
            "primary_key_columns": list(ONLINE_FEATURES.primary_key),
            "scheduling_policy": "TRIGGERED",
            "create_database_objects_if_missing": True,
        },
    }


def main(argv: list[str] | None = None, client=None) -> int:
    _job_library()
    from ecom_airflow.config import DATABRICKS_CLUSTERS

    cli = argparse.ArgumentParser(
        prog="python -m deploy.online_store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("--env", required=True, choices=sorted(DATABRICKS_CLUSTERS))
    cli.add_argument("--database-instance", required=True, help="the Lakebase database instance")
    cli.add_argument("--logical-database", required=True, help="its Postgres database")
    cli.add_argument("--dry-run", action="store_true", help="print the request, send nothing")
    args = cli.parse_args(argv)
    catalog = DATABRICKS_CLUSTERS[args.env][0]
    body = synced_table(catalog, args.database_instance, args.logical_database)
    if args.dry_run:
        print(json.dumps(body, indent=2, sort_keys=True))
        return 0
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.errors import DatabricksError
    from databricks.sdk.service.database import SyncedDatabaseTable

    try:
        client = client or WorkspaceClient()
        created = client.database.create_synced_database_table(SyncedDatabaseTable.from_dict(body))
    except (DatabricksError, ValueError) as error:
        print(f"error: creating {body['name']}: {error}", file=sys.stderr)
        return 1
    status = created.data_synchronization_status
    pipeline = status.pipeline_id if status else None
    print(f"created {created.name}")
    if pipeline:
        print(f"set ECOM_ONLINE_SYNC_PIPELINE_ID={pipeline} on the Airflow deployment")
    else:
        print("the pipeline id is not assigned yet: read it from the synced table's page")
    return 0


if __name__ == "__main__":
    sys.exit(main())
