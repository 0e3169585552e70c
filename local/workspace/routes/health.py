"""Liveness and the discovery document clients read before their first API call."""

from __future__ import annotations

from fastapi import APIRouter

from local.workspace.state import Workspace

router = APIRouter()


@router.get("/health")
def health(workspace: Workspace):
    return {"status": "ok", "mode": workspace.mode}


@router.get("/.well-known/databricks-config")
def host_metadata():
    # databricks-sdk probes this discovery document on every client start and warns when
    # it is missing. No OAuth here (bearer tokens only), so no OIDC endpoint is announced.
    return {"oidc_endpoint": "", "workspace_id": "0"}
