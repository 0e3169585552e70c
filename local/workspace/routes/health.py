"""Liveness and the discovery document clients read before their first API call."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from local.workspace.state import Workspace

router = APIRouter()


@router.get("/health")
def health(workspace: Workspace):
    """``ok`` while the dispatcher hands queued runs to the cluster; ``degraded`` (503) once
    it has died, since every run submitted would then stay QUEUED."""
    cluster = workspace.cluster.status()
    alive = cluster["dispatcher"] == "alive"
    body = {"status": "ok" if alive else "degraded", "mode": workspace.mode, **cluster}
    return JSONResponse(body, status_code=200 if alive else 503)


@router.get("/.well-known/databricks-config")
def host_metadata():
    # databricks-sdk probes this discovery document on every client start and warns when
    # it is missing. No OAuth here (bearer tokens only), so no OIDC endpoint is announced.
    return {"oidc_endpoint": "", "workspace_id": "0"}
