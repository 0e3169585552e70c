"""``python -m deploy.cluster_policy``: create or update the cluster policy of an environment's
job clusters, which installs the job libraries.

    python -m deploy.cluster_policy --env prod [--name ecom-prod-jobs] [--dry-run]

Through the Databricks SDK (``WorkspaceClient().cluster_policies``, authenticated as the SDK's
environment or config profile says), a policy named ``--name`` (default ``ecom-<env>-jobs``):

* ``libraries``: every job library (``JOB_LIBRARIES`` of ``ecom_airflow/config.py``) from PyPI
  at its pin. Databricks installs them on every cluster created with the policy, and refuses
  other cluster libraries on it, so the runs must list none: set ``ECOM_CLUSTER_POLICY_ID`` to
  the id printed and ``ECOM_POLICY_LIBRARIES=true`` on the Airflow deployment.
* ``definition``: what every job cluster of the environment already has, fixed: job clusters
  only, the environment's runtime, the ``project`` and ``env`` cost tags.

A policy of that name is updated in place (its definition and libraries replaced), so the
command is also how a new library pin or runtime reaches it; otherwise it is created. Prints the
policy's id. ``--dry-run`` prints the request and sends nothing. An API refusal (not an admin,
an invalid definition) is shown in one line, exit 1. The trade-off against the per-script
libraries the runs list by default: ``docs/cost.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from deploy.environment import importable


def policy_request(env: str, name: str | None = None) -> dict[str, Any]:
    """The body of the policy of ``env`` (``dev`` or ``prod``): name, definition (a JSON
    document, as the API takes it), description and libraries."""
    importable()
    from ecom_airflow.config import DATABRICKS_CLUSTERS, JOB_LIBRARIES

    _, cluster = DATABRICKS_CLUSTERS[env]
    definition = {
        "cluster_type": {"type": "fixed", "value": "job"},
        "spark_version": {"type": "fixed", "value": cluster["spark_version"]},
        "custom_tags.project": {"type": "fixed", "value": "ecom-ml"},
        "custom_tags.env": {"type": "fixed", "value": env},
    }
    return {
        "name": name or f"ecom-{env}-jobs",
        "definition": json.dumps(definition, sort_keys=True),
        "description": "ecom-ml job clusters: runtime, cost tags and the job libraries "
        "(deploy/cluster_policy.py)",
        "libraries": [{"pypi": {"package": pin}} for pin in JOB_LIBRARIES],
    }


def apply(client, body: dict[str, Any]) -> tuple[str, str]:
    """Create the policy, or update the one of the same name; (policy id, what was done)."""
    from databricks.sdk.service.compute import Library

    fields = dict(body, libraries=[Library.from_dict(lib) for lib in body["libraries"]])
    existing = next((p for p in client.cluster_policies.list() if p.name == body["name"]), None)
    if existing is not None:
        client.cluster_policies.edit(policy_id=existing.policy_id, **fields)
        return existing.policy_id, "updated"
    return client.cluster_policies.create(**fields).policy_id, "created"


def main(argv: list[str] | None = None, client=None) -> int:
    importable()
    from ecom_airflow.config import DATABRICKS_CLUSTERS

    cli = argparse.ArgumentParser(
        prog="python -m deploy.cluster_policy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("--env", required=True, choices=sorted(DATABRICKS_CLUSTERS))
    cli.add_argument("--name", help="the policy's name (default: ecom-<env>-jobs)")
    cli.add_argument("--dry-run", action="store_true", help="print the request, send nothing")
    args = cli.parse_args(argv)
    body = policy_request(args.env, args.name)
    if args.dry_run:
        print(json.dumps(body, indent=2, sort_keys=True))
        return 0
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.errors import DatabricksError

    try:
        policy_id, done = apply(client or WorkspaceClient(), body)
    except (DatabricksError, ValueError) as error:
        print(f"error: cluster policy {body['name']}: {error}", file=sys.stderr)
        return 1
    print(f"{done} cluster policy {body['name']} ({len(body['libraries'])} libraries): {policy_id}")
    print(
        f"set ECOM_CLUSTER_POLICY_ID={policy_id} and ECOM_POLICY_LIBRARIES=true on the Airflow "
        "deployment"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
