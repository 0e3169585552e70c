"""Read a file from a Unity Catalog Volume through the Databricks Files API.

Uses the same Airflow connection as ``DatabricksSubmitRunOperator`` (``databricks_conn_id``):
the provider's ``DatabricksHook`` resolves the connection, the workspace host and the token
(personal access token, or an Azure AD / service principal token for the auth modes the hook
supports), and the official ``databricks-sdk`` client does the download (the hook has no
Files API method; its ``_do_api_call`` only handles JSON responses).

Connection format (the provider drops a scheme and port given in ``host``; they go in their
own fields):

* local workspace: ``{"conn_type": "databricks", "host": "127.0.0.1", "port": 8765,
  "schema": "http", "password": "<token>"}``
* Azure Databricks: host ``adb-<id>.<n>.azuredatabricks.net`` (https), password = token.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.databricks.hooks.databricks import DatabricksHook
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException


class WorkspaceFileNotFound(AirflowException):
    """The file does not exist on the workspace (yet)."""


def _connection_help(conn_id: str) -> str:
    return (
        f"define the Airflow connection {conn_id!r}, e.g. AIRFLOW_CONN_{conn_id.upper()}="
        '\'{"conn_type": "databricks", "host": "adb-<id>.azuredatabricks.net", '
        '"password": "<token>"}\' (locally `make up` sets it to the local workspace: host '
        '127.0.0.1, port, schema "http")'
    )


def workspace_client(databricks_conn_id: str = "databricks_default"):
    """A ``databricks.sdk.WorkspaceClient`` for the workspace of ``databricks_conn_id``."""
    from databricks.sdk import WorkspaceClient

    hook = DatabricksHook(databricks_conn_id=databricks_conn_id, caller="ecom_plugins")
    try:
        conn = hook.databricks_conn
    except AirflowNotFoundException as error:
        raise AirflowNotFoundException(
            f"Airflow connection {databricks_conn_id!r} (Databricks) is not defined: "
            f"{_connection_help(databricks_conn_id)}"
        ) from error
    if not hook.host:
        raise AirflowException(
            f"Airflow connection {databricks_conn_id!r} has no host: "
            f"{_connection_help(databricks_conn_id)}"
        )
    # Same URL the hook builds for the Jobs API (scheme from `schema`, optional port).
    port = f":{conn.port}" if conn.port else ""
    url = f"{conn.schema or 'https'}://{hook.host}{port}"
    # The hook's token resolution covers every token-based auth mode the operator supports.
    token = hook._get_token(raise_error=True)
    return WorkspaceClient(host=url, token=token, auth_type="pat")


def read_bytes(
    path: str,
    *,
    databricks_conn_id: str = "databricks_default",
    produced_by: str | None = None,
) -> bytes:
    """The content of the Volume file ``path`` (``/Volumes/<catalog>/<schema>/<volume>/...``).

    :param produced_by: which task writes the file, named in the error when it is missing.
    :raises WorkspaceFileNotFound: the file does not exist.
    :raises AirflowNotFoundException: the connection is not defined.
    :raises AirflowException: access denied, or not a Volume path.
    """
    from databricks.sdk.errors import BadRequest, NotFound, PermissionDenied, Unauthenticated

    if not path.startswith("/Volumes/"):
        raise AirflowException(f"{path!r} is not a Unity Catalog Volume path (/Volumes/...)")
    client = workspace_client(databricks_conn_id)
    try:
        return client.files.download(path).contents.read()
    except NotFound as error:
        writer = produced_by or "the job that produces it"
        raise WorkspaceFileNotFound(
            f"{path} does not exist on the Databricks workspace of connection "
            f"{databricks_conn_id!r}; it should have been written by {writer} for this date "
            f"(check that it ran and succeeded). Workspace said: {error}"
        ) from error
    except (PermissionDenied, Unauthenticated) as error:
        raise AirflowException(
            f"Permission denied reading {path} with connection {databricks_conn_id!r} "
            f"({type(error).__name__}): {error}. The token's principal needs READ VOLUME on the "
            "volume (and USE CATALOG / USE SCHEMA on its parents)."
        ) from error
    except BadRequest as error:
        raise AirflowException(f"The workspace refused the path {path}: {error}") from error


def read_json(
    path: str,
    *,
    databricks_conn_id: str = "databricks_default",
    produced_by: str | None = None,
) -> Any:
    """The Volume file ``path`` parsed as JSON; invalid JSON raises an ``AirflowException``."""
    raw = read_bytes(path, databricks_conn_id=databricks_conn_id, produced_by=produced_by)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise AirflowException(f"{path} is not valid JSON: {error}") from error
