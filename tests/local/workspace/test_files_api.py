"""Files API for Unity Catalog Volumes, through the official databricks-sdk."""

from __future__ import annotations

import http.client
import io
import json
from pathlib import Path

import pytest
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


# Paths are sent with http.client, byte for byte: requests (and urllib3) collapse a literal
# ``..`` before sending, so a traversal sent through them never reaches the server's check.
UP = {  # four segments up from Volumes/main/default/reports: the workspace state folder
    "raw": "../../../../",
    "encoded dots": "%2e%2e/%2e%2e/%2e%2e/%2e%2e/",
    "encoded slashes": "%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F",
    "double encoded": "%252e%252e/%252e%252e/%252e%252e/%252e%252e/",
    "backslashes": "..%5c..%5c..%5c..%5c",
}
ROUTES = [  # (method, api, what the traversal names in the state folder)
    ("GET", "files", "outside.txt"),  # download
    ("PUT", "files", "planted.txt"),  # upload
    ("DELETE", "files", "outside.txt"),
    ("GET", "directories", ""),  # listing
    ("PUT", "directories", "planted-dir"),
]


def _raw_request(ws, method: str, path: str) -> tuple[int, dict, bytes]:
    """One request with ``path`` sent exactly as given, with the token."""
    connection = http.client.HTTPConnection(ws.host, ws.port, timeout=10)
    try:
        connection.request(
            method,
            path,
            body=b"planted" if method == "PUT" else None,
            headers={"Authorization": f"Bearer {ws.token}"},
        )
        response = connection.getresponse()
        raw = response.read()
        is_json = response.getheader("content-type", "").startswith("application/json")
    finally:
        connection.close()
    return response.status, (json.loads(raw) if is_json else {}), raw


@pytest.fixture(scope="module")
def outside(ws) -> Path:
    """A file next to the Volumes root, in the workspace state folder."""
    secret = ws.layout.state / "outside.txt"
    secret.write_text("not for the Files API")
    assert ws.layout.volumes_root.parent == ws.layout.state
    return secret


@pytest.mark.parametrize("up", UP.values(), ids=UP.keys())
@pytest.mark.parametrize(
    ("method", "api", "target"), ROUTES, ids=[f"{m} {a}" for m, a, _ in ROUTES]
)
def test_a_dot_dot_volumes_path_is_refused_before_any_file_access(
    ws, outside, method, api, target, up
):
    path = f"/api/2.0/fs/{api}/Volumes/main/default/reports/{up}{target}"
    status, body, raw = _raw_request(ws, method, path)
    assert status == 400, (status, raw[:300])
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert body["message"].startswith("/Volumes/main/default/reports/")
    assert body["message"].endswith(" is not a normalised path"), body
    assert ".." in body["message"]
    assert b"not for the Files API" not in raw and "contents" not in body  # nothing leaked
    assert outside.read_text() == "not for the Files API"  # not overwritten, not deleted
    # Nothing planted (the warm driver adds its own folders here, so only these names count).
    assert not (ws.layout.state / "planted.txt").exists()
    assert not (ws.layout.state / "planted-dir").exists()


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_dot_dot_that_stays_inside_the_volumes_root_is_refused_too(ws, method):
    """Only normalised paths are accepted, wherever the ``..`` would lead."""
    ws.layout.volumes_root.joinpath("ecom/raw/landing").mkdir(parents=True, exist_ok=True)
    path = "/api/2.0/fs/files/Volumes/ecom/raw/landing/../landing/inside.txt"
    status, body, _ = _raw_request(ws, method, path)
    assert (status, body.get("error_code")) == (400, "INVALID_PARAMETER_VALUE")
    assert (
        body["message"]
        == "/Volumes/ecom/raw/landing/../landing/inside.txt is not a normalised path"
    )
    assert not (ws.layout.volumes_root / "ecom/raw/landing/inside.txt").exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/fs/files/Volumes/main/default/reports/../../../../../../../../etc/passwd",
        "/api/2.0/fs/files/Volumes/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/2.0/fs/directories/Volumes/main/default/reports/../../../../../../../../etc",
    ],
)
def test_a_dot_dot_path_to_the_system_files_is_refused(ws, path):
    status, body, raw = _raw_request(ws, "GET", path)
    assert (status, body.get("error_code")) == (400, "INVALID_PARAMETER_VALUE"), raw[:300]
    assert body["message"].endswith(" is not a normalised path"), body
    assert b"root:" not in raw and "contents" not in body


@pytest.mark.parametrize(
    "path", ["/api/2.0/fs/files/etc/passwd", "/api/2.0/fs/files/../../../etc/passwd"]
)
def test_a_path_outside_volumes_is_refused(ws, path):
    status, body, raw = _raw_request(ws, "GET", path)
    assert (status, body.get("error_code")) == (400, "INVALID_PARAMETER_VALUE"), raw[:300]
    assert body["message"].endswith("etc/passwd is not a /Volumes path")
