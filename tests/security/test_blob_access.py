"""Blob reports stay private; the link that leaves the cluster is a short-lived read-only SAS.

Against a running Azurite, with a report published by ``HtmlReportToBlobOperator`` in a real DAG
run (``sas_expiry`` of 2 hours, so the configured lifetime is not the default).
``tests/plugins/test_blob_report.py`` already checks that the container is created private,
that the plain blob URL is refused and that the SAS link downloads the report; this module adds
what an attacker would try next: listing the container anonymously, writing or deleting with
the link, reusing its signature for another blob, and how long the link lives.
"""

from __future__ import annotations

import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pendulum
import pytest
import requests
from airflow.sdk import DAG

from ecom_plugins import HtmlReportToBlobOperator
from ecom_plugins.blob_report import REPORT_LINK_KEY, SAS_EXPIRY_MAX
from tests.support.airflow import serialize, xcom

pytestmark = pytest.mark.airflow

DAY = pendulum.datetime(2019, 10, 1, tz="UTC")
LIFETIME = timedelta(hours=2)
REPORT = "<!DOCTYPE html><html><body><h1>private</h1></body></html>"


@pytest.fixture(scope="module")
def published(airflow_db, databricks_conn, azurite, put_volume_file):

    suffix = uuid.uuid4().hex[:8]
    pipeline = f"security_{suffix}"
    source = f"/Volumes/ecom/raw/reports/{pipeline}/2019-10-01/r.html"
    put_volume_file(source, REPORT)
    with DAG(dag_id=f"blob_access_{suffix}", schedule=None, start_date=DAY) as dag:
        HtmlReportToBlobOperator(
            task_id="publish",
            report_path=source,
            pipeline=pipeline,
            report_name="r",
            sas_expiry=LIFETIME,
        )
    serialize(dag)
    before = datetime.now(UTC)
    run = dag.test(logical_date=DAY)
    after = datetime.now(UTC)
    link = xcom(run.dag_id, run.run_id, None, REPORT_LINK_KEY)
    url = f"{azurite.blob_url}/reports/{pipeline}/2019-10-01/r.html"
    return SimpleNamespace(
        run=run,
        link=link,
        url=url,
        before=before,
        after=after,
        azurite=azurite,
        query=dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query)),
        index=f"{azurite.blob_url}/reports/{pipeline}/index.html",
    )


def test_the_link_is_a_read_only_sas_of_that_blob(published):
    assert published.run.state == "success"
    assert published.link.startswith(published.url + "?")
    query = published.query
    assert query["sp"] == "r"  # read only
    assert query["sr"] == "b"  # this one blob, not the container
    assert query["sig"] and "se" in query and "st" in query
    response = requests.get(published.link, timeout=10)
    assert response.status_code == 200 and response.text == REPORT


def test_the_link_expires_within_the_configured_lifetime(published):
    expiry = datetime.fromisoformat(published.query["se"].replace("Z", "+00:00"))
    start = datetime.fromisoformat(published.query["st"].replace("Z", "+00:00"))
    slack = timedelta(seconds=1)  # the SAS times are whole seconds
    assert published.before + LIFETIME - slack <= expiry <= published.after + LIFETIME + slack
    assert start < published.after  # valid at once (5 minutes of clock skew allowed)


def _signed(azurite, blob_name: str | None, **permissions) -> str:
    """A SAS for the control requests (the account key signs what anonymous users lack)."""
    from azure.storage.blob import (
        BlobSasPermissions,
        ContainerSasPermissions,
        generate_blob_sas,
        generate_container_sas,
    )

    common = {
        "account_name": azurite.account,
        "container_name": "reports",
        "account_key": azurite.key,
        "expiry": datetime.now(UTC) + timedelta(minutes=5),
    }
    if blob_name is None:
        return generate_container_sas(permission=ContainerSasPermissions(**permissions), **common)
    return generate_blob_sas(
        blob_name=blob_name, permission=BlobSasPermissions(**permissions), **common
    )


@pytest.mark.parametrize("what", ["container listing", "index read", "new blob upload"])
def test_anonymous_requests_are_refused_where_signed_ones_succeed(published, what):
    azurite = published.azurite
    index_name = published.index.split("/reports/", 1)[1]
    new_name = index_name.replace("index.html", f"anonymous_{uuid.uuid4().hex[:6]}.html")
    method, url, params, sas, expected = {
        "container listing": (
            "GET",
            f"{azurite.blob_url}/reports",
            {"restype": "container", "comp": "list"},
            _signed(azurite, None, read=True, list=True),
            200,
        ),
        "index read": ("GET", published.index, {}, _signed(azurite, index_name, read=True), 200),
        "new blob upload": (
            "PUT",
            f"{azurite.blob_url}/reports/{new_name}",
            {},
            _signed(azurite, new_name, create=True, write=True),
            201,
        ),
    }[what]
    headers = {"x-ms-blob-type": "BlockBlob"} if method == "PUT" else {}
    anonymous = requests.request(method, url, params=params, headers=headers, data=b"x", timeout=10)
    assert anonymous.status_code in (401, 403, 404), anonymous.status_code
    signed = requests.request(
        method, f"{url}?{sas}", params=params, headers=headers, data=b"x", timeout=10
    )
    assert signed.status_code == expected, signed.text  # the request itself was well formed


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_the_link_cannot_write_or_delete(published, method):
    headers = {"x-ms-blob-type": "BlockBlob"} if method == "PUT" else {}
    response = requests.request(
        method, published.link, headers=headers, data=b"<h1>defaced</h1>", timeout=10
    )
    assert response.status_code == 403, response.text
    assert requests.get(published.link, timeout=10).text == REPORT


def test_the_signature_does_not_open_another_blob(published):
    other = published.index + "?" + urllib.parse.urlsplit(published.link).query
    assert requests.get(other, timeout=10).status_code == 403


def test_an_expired_link_is_refused(published):
    """The expiry is enforced: the same signing with an expiry in the past opens nothing."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    now = datetime.now(UTC)
    blob_name = published.url.split("/reports/", 1)[1]
    sas = generate_blob_sas(
        account_name=published.azurite.account,
        container_name="reports",
        blob_name=blob_name,
        account_key=published.azurite.key,
        permission=BlobSasPermissions(read=True),
        start=now - timedelta(hours=2),
        expiry=now - timedelta(minutes=1),
    )
    assert requests.get(f"{published.url}?{sas}", timeout=10).status_code == 403


@pytest.mark.parametrize("lifetime", [timedelta(0), -LIFETIME, SAS_EXPIRY_MAX + timedelta(1)])
def test_a_longer_or_empty_lifetime_is_refused(lifetime):
    with pytest.raises(ValueError, match="sas_expiry must be between 0 and 7 days"):
        HtmlReportToBlobOperator(
            task_id="t",
            report_path="/Volumes/a/b/c/r.html",
            pipeline="p",
            report_name="r",
            sas_expiry=lifetime,
        )
