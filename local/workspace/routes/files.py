"""The Files API on Volumes: files (get, head, put, delete) and directories (list, head,
create, delete), under ``/Volumes/<catalog>/<schema>/<volume>/...`` mapped to a local folder.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
import shutil
from email.utils import formatdate
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from local.workspace.errors import ApiError
from local.workspace.state import Workspace
from local.workspace.validation import volume_path

router = APIRouter()
# The name ending of an upload still being written, next to its target.
UPLOADING = ".uploading"


def _file_headers(path: Path) -> dict:
    stat = path.stat()
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {
        "content-length": str(stat.st_size),
        "content-type": content_type,
        "last-modified": formatdate(stat.st_mtime, usegmt=True),
    }


@router.get("/api/2.0/fs/files/{raw:path}")
def download(raw: str, workspace: Workspace):
    path = volume_path(workspace.layout, raw)
    if not path.is_file():
        raise ApiError(404, "NOT_FOUND", f"File /{raw} does not exist")
    headers = _file_headers(path)
    return FileResponse(path, media_type=headers["content-type"])


@router.head("/api/2.0/fs/files/{raw:path}")
def file_metadata(raw: str, workspace: Workspace):
    path = volume_path(workspace.layout, raw)
    if not path.is_file():
        return Response(status_code=404)
    return Response(status_code=200, headers=_file_headers(path))


@router.put("/api/2.0/fs/files/{raw:path}")
async def upload(raw: str, request: Request, workspace: Workspace):
    path = volume_path(workspace.layout, raw)
    overwrite = request.query_params.get("overwrite", "false").lower() == "true"
    if path.is_dir():
        raise ApiError(409, "ALREADY_EXISTS", f"/{raw} is a directory")
    if path.exists() and not overwrite:
        raise ApiError(409, "ALREADY_EXISTS", f"File /{raw} already exists")
    _make_directories(path.parent, raw)
    # Each upload writes a file of its own and publishes it whole in one step: readers never
    # see a half-written file, concurrent uploads never mix, and overwrite=false holds under
    # concurrency (the link is refused once the path exists). The partial file goes in every
    # case: published, refused, failed, or the client gone mid-body.
    fd, partial = _new_partial(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
        if overwrite:
            try:
                os.replace(partial, path)
            except IsADirectoryError:
                raise ApiError(409, "ALREADY_EXISTS", f"/{raw} is a directory") from None
        else:
            try:
                os.link(partial, path)
            except FileExistsError:
                raise ApiError(409, "ALREADY_EXISTS", f"File /{raw} already exists") from None
    finally:
        partial.unlink(missing_ok=True)
    return Response(status_code=204)


def _new_partial(path: Path) -> tuple[int, Path]:
    """A new file next to ``path`` for one upload, named ``.<name>.<random>.uploading``
    (hidden from listings), open for writing; created with the usual permissions."""
    partial = path.with_name(f".{path.name[:100]}.{secrets.token_hex(8)}{UPLOADING}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    return os.open(partial, flags, 0o666), partial


def _make_directories(path: Path, raw: str) -> None:
    """``path`` and its parents as directories; a file in the way is a 409, not a 500."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ApiError(409, "ALREADY_EXISTS", f"A parent of /{raw} is a file") from None


@router.delete("/api/2.0/fs/files/{raw:path}")
def delete_file(raw: str, workspace: Workspace):
    path = volume_path(workspace.layout, raw)
    if not path.is_file():
        raise ApiError(404, "NOT_FOUND", f"File /{raw} does not exist")
    path.unlink()
    return Response(status_code=204)


def _entry(raw: str, child: Path) -> dict:
    """One entry of a directory listing, as ``fs/directories`` lists it."""
    stat = child.stat()
    entry = {
        "path": "/" + raw.strip("/") + "/" + child.name,
        "name": child.name,
        "is_directory": child.is_dir(),
        "last_modified": int(stat.st_mtime * 1000),
    }
    if child.is_file():
        entry["file_size"] = stat.st_size
    return entry


@router.get("/api/2.0/fs/directories/{raw:path}")
def list_directory(raw: str, workspace: Workspace):
    path = volume_path(workspace.layout, raw)
    if not path.is_dir():
        raise ApiError(404, "NOT_FOUND", f"Directory /{raw} does not exist")
    contents = [
        _entry(raw, child)
        for child in sorted(path.iterdir())
        if not child.name.endswith(UPLOADING)  # an upload not yet complete
    ]
    return {"contents": contents}


@router.head("/api/2.0/fs/directories/{raw:path}")
def directory_metadata(raw: str, workspace: Workspace):
    return Response(status_code=200 if volume_path(workspace.layout, raw).is_dir() else 404)


@router.put("/api/2.0/fs/directories/{raw:path}")
def create_directory(raw: str, workspace: Workspace):
    path = volume_path(workspace.layout, raw)
    if path.is_file():
        raise ApiError(409, "ALREADY_EXISTS", f"/{raw} is a file")
    _make_directories(path, raw)
    return Response(status_code=204)


@router.delete("/api/2.0/fs/directories/{raw:path}")
def delete_directory(raw: str, workspace: Workspace):
    path = volume_path(workspace.layout, raw)
    if not path.is_dir():
        raise ApiError(404, "NOT_FOUND", f"Directory /{raw} does not exist")
    if any(path.iterdir()):
        raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"Directory /{raw} is not empty")
    shutil.rmtree(path)
    return Response(status_code=204)
