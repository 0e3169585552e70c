"""HTTP side of the local workspace: the Databricks Jobs 2.2 runs API and the Files API.

Only what this project's clients use (the Airflow Databricks operator, hook and trigger, and
the official ``databricks-sdk``), answered the way Databricks answers: the same JSON shapes,
life-cycle states and ``{"error_code", "message"}`` errors. One router per API lives in
``local/workspace/routes/``; this module builds the application around them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from local.spark.runtime import LocalLayout
from local.workspace.auth import require_token
from local.workspace.cluster import Cluster
from local.workspace.errors import add_error_handlers
from local.workspace.limits import MAX_UPLOAD_BYTES, RequestLimits
from local.workspace.routes import clusters, files, health, jobs, pages
from local.workspace.state import WorkspaceState
from local.workspace.store import RunStore


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the cluster's dispatcher (and warm drivers) with the server; stop them with it."""
    workspace: WorkspaceState = app.state.workspace
    if workspace.lost_runs:
        print(
            f"[workspace] {workspace.lost_runs} run(s) in flight at the last stop marked "
            "INTERNAL_ERROR"
        )
    workspace.cluster.start()
    yield
    workspace.cluster.stop()


def create_app(
    layout: LocalLayout,
    *,
    token: str,
    mode: str,
    slots: int,
    port: int,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> FastAPI:
    """The workspace application on ``layout``'s state folder. It takes the folder's runs in
    flight for lost: the caller holds the folder's lock (``local.workspace.lock``, taken by
    ``python -m local.workspace serve``), so no live server's runs are among them."""
    store = RunStore(layout.workspace_dir / "runs.sqlite")
    lost = store.mark_in_flight_as_lost()
    app = FastAPI(
        title="Local Databricks workspace", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.workspace = WorkspaceState(
        layout=layout,
        store=store,
        cluster=Cluster(store, layout, mode=mode, slots=slots),
        mode=mode,
        base_url=f"http://127.0.0.1:{port}",
        lost_runs=lost,
        token=token,
    )
    add_error_handlers(app)
    # Body size limits inside the token check: a request without the token is a 401 first.
    app.add_middleware(RequestLimits, max_upload_bytes=max_upload_bytes)
    app.middleware("http")(require_token)
    for api in (health, jobs, clusters, files, pages):
        app.include_router(api.router)
    return app
