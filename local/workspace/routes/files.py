"""The Files API on Volumes: files (get, head, put, delete) and directories (list, head,
create, delete), under ``/Volumes/<catalog>/<schema>/<volume>/...`` mapped to a local folder.
"""

from __future__ import annotations

import mimetypes
import shutil
from email.utils import formatdate
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from local.workspace.errors import ApiError
from local.workspace.state import Workspace
from local.workspace.validation import volume_path

router = APIRouter()


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
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.uploading")
    with open(partial, "wb") as handle:
        async for chunk in request.stream():
            handle.write(chunk)
    partial.replace(path)  # readers never see a half-written file
    return Response(status_code=204)


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
        if not child.name.endswith(".uploading")  # an upload not yet complete
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
    path.mkdir(parents=True, exist_ok=True)
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
