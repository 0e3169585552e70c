"""The "Report" link as a browser opens it: the connection's blob endpoint replaced by
``ECOM_PUBLIC_BLOB_ENDPOINT`` (the compose stack: Azurite is ``azurite:10000`` for Airflow and
``127.0.0.1:10000`` for the host's browser). No service needed."""

from __future__ import annotations

import pytest
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from ecom_plugins.blob_report import PUBLIC_BLOB_ENDPOINT_ENV, public_link
from local.stack.config import AZURITE_ACCOUNT, AZURITE_KEY

INSIDE = f"http://azurite:10000/{AZURITE_ACCOUNT}"
OUTSIDE = f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"
BLOB = "reports/data_quality_validation/2024-01-01/quality.html"


def _service(endpoint: str) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint};"
    )


def _sas(blob) -> str:
    return generate_blob_sas(
        account_name=blob.account_name,
        container_name=blob.container_name,
        blob_name=blob.blob_name,
        account_key=AZURITE_KEY,
        permission=BlobSasPermissions(read=True),
        expiry="2030-01-01T00:00:00Z",
        start="2029-12-31T00:00:00Z",
    )


def test_without_the_setting_the_link_is_unchanged(monkeypatch):
    monkeypatch.delenv(PUBLIC_BLOB_ENDPOINT_ENV, raising=False)
    url = f"{INSIDE}/{BLOB}?sv=x&sig=y"
    assert public_link(url, f"{INSIDE}/") == url


@pytest.mark.parametrize("public", [OUTSIDE, f"{OUTSIDE}/"])
def test_the_public_endpoint_replaces_the_connection_endpoint(monkeypatch, public):
    monkeypatch.setenv(PUBLIC_BLOB_ENDPOINT_ENV, public)
    service = _service(INSIDE)
    blob = service.get_blob_client(*BLOB.split("/", 1))
    link = f"{blob.url}?{_sas(blob)}"
    opened = public_link(link, service.url)
    assert opened == f"{OUTSIDE}/{BLOB}?{_sas(blob)}"
    # The SAS signs account, container and blob, not the host: the link the browser opens
    # carries the very signature a client of the public endpoint computes for that blob.
    outside = _service(OUTSIDE).get_blob_client(*BLOB.split("/", 1))
    assert opened == f"{outside.url}?{_sas(outside)}"


def test_a_link_to_another_account_is_left_alone(monkeypatch):
    monkeypatch.setenv(PUBLIC_BLOB_ENDPOINT_ENV, OUTSIDE)
    other = "https://other.blob.core.windows.net/reports/a.html"
    assert public_link(other, f"{INSIDE}/") == other
    # A prefix of the endpoint that is not a path boundary is not the endpoint.
    assert public_link(f"{INSIDE}2/{BLOB}", INSIDE) == f"{INSIDE}2/{BLOB}"
