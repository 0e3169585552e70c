"""Files API for Unity Catalog Volumes, through the official databricks-sdk."""

from __future__ import annotations

import io

import pytest
import requests
from databricks.sdk.errors import AlreadyExists, NotFound


def test_upload_download_list_metadata_delete(ws, client):
    path = "/Volumes/ecom/raw/landing/test/a.csv"
    client.files.upload(path, io.BytesIO(b"x,y\n1,2\n"), overwrite=True)
    assert client.files.download(path).contents.read() == b"x,y\n1,2\n"
    assert client.files.get_metadata(path).content_length == 8
    listed = list(client.files.list_directory_contents("/Volumes/ecom/raw/landing/test"))
    assert [(e.name, e.is_directory, e.file_size) for e in listed] == [("a.csv", False, 8)]
    assert (ws.layout.volumes_root / "ecom/raw/landing/test/a.csv").read_bytes() == b"x,y\n1,2\n"
    with pytest.raises(AlreadyExists):
        client.files.upload(path, io.BytesIO(b"other"), overwrite=False)
    client.files.delete(path)
    with pytest.raises(NotFound):
        client.files.download(path)


def test_create_and_delete_directory(client):
    client.files.create_directory("/Volumes/ecom/raw/reports/x/y")
    client.files.get_directory_metadata("/Volumes/ecom/raw/reports/x/y")
    client.files.delete_directory("/Volumes/ecom/raw/reports/x/y")
    with pytest.raises(NotFound):
        client.files.get_directory_metadata("/Volumes/ecom/raw/reports/x/y")


@pytest.mark.parametrize(
    "path", ["Volumes/a/../../../etc/passwd", "Volumes/a/%2e%2e/%2e%2e/secrets", "etc/passwd"]
)
def test_paths_outside_the_volumes_root_are_refused(ws, path):
    response = requests.get(f"{ws.url}/api/2.0/fs/files/{path}",
                            headers={"Authorization": f"Bearer {ws.token}"}, timeout=10)  # fmt: skip
    assert response.status_code in (400, 403, 404)
    assert response.status_code != 200
    if response.status_code != 404:
        assert response.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "PERMISSION_DENIED")
