from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient

from local.workspace.process import running_workspace


@pytest.fixture(scope="module")
def ws(session_dir, request):
    """One warm workspace per test module (one slot: runs queue behind each other)."""
    with running_workspace(session_dir / f"ws-{request.module.__name__}") as workspace:
        yield workspace


@pytest.fixture(scope="module")
def client(ws) -> WorkspaceClient:
    return WorkspaceClient(host=ws.url, token=ws.token)
