"""Publish an HTML report from a Databricks Volume to Azure Blob Storage, linked from the task.

The report lands at the deterministic blob ``<pipeline>/<ds>/<report_name>.html`` of a private
container (a rerun of the date overwrites it), and ``<pipeline>/index.html`` lists the
pipeline's reports newest first. The task's "Report" extra link opens the report:

* the container stays private, so a plain blob URL does not open in a browser. When the
  ``wasb`` connection authenticates with the account key (Azurite, key or connection-string
  connections) the link is a read-only SAS URL of that one blob, valid ``sas_expiry``
  (default and maximum 7 days; a later click needs a rerun or the portal), HTTPS-only when the
  account is served over HTTPS. The account key is masked in the task log;
* with Entra ID credentials it is a user-delegation SAS (the identity needs "Storage Blob
  Delegator"; at most 7 days); if that is refused, or the connection uses a SAS token, the
  link is the plain blob URL (opens for users signed in to the storage account).

XComs: ``report_url`` (plain blob URL, also the return value) and ``report_link`` (what the
"Report" button opens). Where the browser reaches the storage account at another address than
Airflow does (containers: ``http://azurite:10000/...`` inside, ``http://127.0.0.1:10000/...`` on
the host), ``ECOM_PUBLIC_BLOB_ENDPOINT`` names the browser's endpoint and the link uses it: the
SAS signs the account, container and blob, not the host, so the link stays valid. The index
links are relative (``<ds>/<name>.html``): they work where the container is browsed with
credentials (portal, Storage Explorer, a static-site front end).

Airflow 3: ``get_link`` runs in the worker when the task finishes (Task SDK XCom access) and
its result is stored as the XCom ``_link_ReportLink``; the serialized DAG keeps the link as
``{"Report": "_link_ReportLink"}`` and the API server serves that XCom. The plugin
(``plugins/report_link_plugin.py``) registers the link class but deliberately leaves
``ReportLink.operators`` empty: a plugin link bound to operators replaces the serialized link on
the API server and its ``get_link`` would then run there, where the Task SDK XCom API is not
available.
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import XCom
from airflow.sdk import BaseOperator, BaseOperatorLink
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

from ecom_plugins import workspace_files

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

REPORT_URL_KEY = "report_url"
REPORT_LINK_KEY = "report_link"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
PUBLIC_BLOB_ENDPOINT_ENV = "ECOM_PUBLIC_BLOB_ENDPOINT"
USER_DELEGATION_MAX = timedelta(days=7)
SAS_EXPIRY_MAX = timedelta(days=7)  # a report link is short-lived, whatever signs it


class ReportLink(BaseOperatorLink):
    """The "Report" button of a task: the XCom ``report_link`` its operator pushed."""

    name = "Report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(ti_key=ti_key, key=REPORT_LINK_KEY) or ""


def public_link(url: str, endpoint: str) -> str:
    """``url`` of a blob of the account at ``endpoint`` (the connection's), as a browser opens
    it: ``endpoint`` replaced by ``$ECOM_PUBLIC_BLOB_ENDPOINT`` when that is set."""
    public = os.environ.get(PUBLIC_BLOB_ENDPOINT_ENV, "").rstrip("/")
    endpoint = endpoint.rstrip("/")
    if public and url.startswith(f"{endpoint}/"):
        return public + url[len(endpoint) :]
    return url


def render_index(pipeline: str, blob_names: Iterable[str]) -> str:
    """A self-contained HTML page listing ``<pipeline>/<ds>/<name>.html`` blobs, newest first."""
    entries = []
    for name in blob_names:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == pipeline and parts[2].endswith(".html"):
            entries.append((parts[1], parts[2].removesuffix(".html")))
    entries.sort(key=lambda entry: entry[1])
    entries.sort(key=lambda entry: entry[0], reverse=True)  # stable: newest date first
    items = "\n".join(
        f'    <li><a href="{quote(ds)}/{quote(report)}.html">'
        f"{html.escape(ds)} &middot; {html.escape(report)}</a></li>"
        for ds, report in entries
    )
    title = html.escape(f"{pipeline} reports")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
        f"  <title>{title}</title>\n"
        "  <style>body{font-family:sans-serif;margin:2em}li{margin:.3em 0}</style>\n"
        f"</head>\n<body>\n  <h1>{title}</h1>\n  <ul>\n{items}\n  </ul>\n</body>\n</html>\n"
    )


class HtmlReportToBlobOperator(BaseOperator):
    """Copy the HTML report ``report_path`` (a Volume path) to ``<pipeline>/<ds>/<name>.html``.

    :param report_path: Volume path of the report written by the upstream job (templated).
    :param pipeline: first path segment of the blob, e.g. ``data_quality_validation``
        (templated).
    :param report_name: report file name without ``.html`` (templated).
    :param databricks_conn_id: connection of the workspace that holds the Volume.
    :param wasb_conn_id: Azure Blob Storage connection (``WasbHook``).
    :param container: private container of the reports; created if missing (templated).
    :param sas_expiry: validity of the SAS URL of the "Report" link (at most 7 days).
    """

    template_fields = ("report_path", "pipeline", "report_name", "container")
    operator_extra_links = (ReportLink(),)
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        report_path: str,
        pipeline: str,
        report_name: str,
        databricks_conn_id: str = "databricks_default",
        wasb_conn_id: str = "wasb_default",
        container: str = "reports",
        sas_expiry: timedelta = timedelta(days=7),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not timedelta(0) < sas_expiry <= SAS_EXPIRY_MAX:
            raise ValueError(
                f"sas_expiry must be between 0 and {SAS_EXPIRY_MAX.days} days, got {sas_expiry}: "
                "a report link that leaves the cluster is short-lived"
            )
        self.report_path = report_path
        self.pipeline = pipeline
        self.report_name = report_name
        self.databricks_conn_id = databricks_conn_id
        self.wasb_conn_id = wasb_conn_id
        self.container = container
        self.sas_expiry = sas_expiry

    def execute(self, context: Context) -> str:
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
        from azure.storage.blob import ContentSettings

        ds = context.get("ds") or context["dag_run"].run_after.date().isoformat()
        blob_name = self._blob_name(ds)
        upstream = sorted(self.upstream_task_ids)
        report = workspace_files.read_bytes(
            self.report_path,
            databricks_conn_id=self.databricks_conn_id,
            produced_by=f"upstream task(s) {upstream}" if upstream else None,
        )
        hook = WasbHook(wasb_conn_id=self.wasb_conn_id)
        html_settings = ContentSettings(content_type=HTML_CONTENT_TYPE)
        with self._storage_errors(hook):
            hook.create_container(self.container)  # private (no public access) when created
            hook.upload(
                self.container, blob_name, report, overwrite=True, content_settings=html_settings
            )
            reports = hook.get_blobs_list_recursive(
                self.container, prefix=f"{self.pipeline}/", endswith=".html"
            )
            hook.load_string(
                render_index(self.pipeline, reports),
                self.container,
                f"{self.pipeline}/index.html",
                overwrite=True,
                content_settings=html_settings,
            )
            blob = hook.blob_service_client.get_blob_client(self.container, blob_name)
            link = self._read_only_url(hook, blob) or blob.url
            link = public_link(link, hook.blob_service_client.url)
        self.log.info("Published %s (%d bytes) to %s", self.report_path, len(report), blob.url)
        context["ti"].xcom_push(key=REPORT_URL_KEY, value=blob.url)
        context["ti"].xcom_push(key=REPORT_LINK_KEY, value=link)
        return blob.url

    def _blob_name(self, ds: str) -> str:
        for segment in (self.pipeline, self.report_name):
            if "/" in segment or segment.strip() in ("", ".", ".."):
                raise AirflowException(
                    f"pipeline {self.pipeline!r} and report_name {self.report_name!r} must each "
                    "be one non-empty blob path segment (no '/')"
                )
        return f"{self.pipeline}/{ds}/{self.report_name}.html"

    @contextlib.contextmanager
    def _storage_errors(self, hook) -> Iterator[None]:
        """Turn connection and authorization failures into errors naming what to fix."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceExistsError,
        )

        try:
            yield
        except AirflowNotFoundException as error:
            raise AirflowNotFoundException(
                f"Airflow connection {self.wasb_conn_id!r} (Azure Blob Storage) is not defined: "
                f"define it, e.g. AIRFLOW_CONN_{self.wasb_conn_id.upper()}="
                '\'{"conn_type": "wasb", "extra": {"connection_string": "..."}}\' '
                "(locally `make up` sets wasb_default to Azurite)"
            ) from error
        except (ClientAuthenticationError, ResourceExistsError, HttpResponseError) as error:
            denied = isinstance(error, ClientAuthenticationError) or error.status_code == 403
            if not denied and not isinstance(error, ResourceExistsError):
                raise
            account = getattr(hook.blob_service_client, "account_name", "?")
            what = "Access denied to" if denied else "Could not overwrite a blob in"
            raise AirflowException(
                f"{what} container {self.container!r} of storage account {account!r} "
                f"(connection {self.wasb_conn_id!r}, HTTP {error.status_code}, "
                f"{getattr(error, 'error_code', None)}): the credential needs the 'Storage Blob "
                "Data Contributor' role or a key/SAS with create, write and list permissions"
                + ("" if denied else "; a lease or immutability policy may hold the blob")
            ) from error

    def _read_only_url(self, hook, blob) -> str | None:
        """A read-only SAS URL of ``blob``, or None when the credential cannot sign one."""
        from airflow.sdk.log import mask_secret
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        service = hook.blob_service_client
        now = datetime.now(UTC)
        signing: dict[str, Any] = {
            "account_name": blob.account_name,
            "container_name": blob.container_name,
            "blob_name": blob.blob_name,
            "permission": BlobSasPermissions(read=True),
            "start": now - timedelta(minutes=5),  # clock skew
            "expiry": now + self.sas_expiry,
        }
        if blob.url.startswith("https://"):
            signing["protocol"] = "https"  # the link never works over plain HTTP
        account_key = getattr(service.credential, "account_key", None)
        if account_key:  # shared key (Azurite, connection string, account key)
            mask_secret(account_key)  # the connection string is masked, the key alone is not
            sas = generate_blob_sas(account_key=account_key, **signing)
        elif hasattr(service.credential, "get_token"):  # Entra ID: user delegation SAS
            signing["expiry"] = min(signing["expiry"], now + USER_DELEGATION_MAX)
            try:
                key = service.get_user_delegation_key(signing["start"], signing["expiry"])
            except HttpResponseError as error:
                self.log.warning("No user delegation key (%s); linking the plain URL", error)
                return None
            sas = generate_blob_sas(user_delegation_key=key, **signing)
        else:  # a SAS-token connection: its own token is not ours to hand out
            return None
        return f"{blob.url}?{sas}"
