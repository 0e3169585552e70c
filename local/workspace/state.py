"""What the routes of a workspace share, kept on ``app.state`` and handed in as a dependency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from local.spark.runtime import LocalLayout
from local.workspace.cluster import Cluster
from local.workspace.store import RunStore


@dataclass(frozen=True)
class WorkspaceState:
    layout: LocalLayout
    store: RunStore
    cluster: Cluster
    mode: str
    # Where the run pages are served, for the ``run_page_url`` of every run described.
    base_url: str
    # Runs in flight when the workspace last stopped, marked INTERNAL_ERROR at this start.
    lost_runs: int
    token: str = field(repr=False)


async def workspace_state(request: Request) -> WorkspaceState:
    return request.app.state.workspace


Workspace = Annotated[WorkspaceState, Depends(workspace_state)]
