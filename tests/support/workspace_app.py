"""The local workspace's app in process, without its cluster: no dispatcher, no driver, so a
test can send any request (a valid run included) and nothing ever runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from local.spark.runtime import LocalLayout
from local.workspace.server import create_app


@asynccontextmanager
async def no_cluster(app) -> AsyncIterator[None]:
    yield


def app_without_cluster(layout: LocalLayout, token: str, **kwargs):
    """``create_app`` on ``layout`` whose lifespan (which starts the cluster) does nothing."""
    layout.workspace_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(layout, token=token, mode="cold", slots=1, port=0, **kwargs)
    app.router.lifespan_context = no_cluster
    return app


def finished_run(app, log: Path, name: str = "finished") -> int:
    """A run in the app's store that ended SUCCESS with ``log`` as its log; its run id."""
    store = app.state.workspace.store
    run_id, _ = store.create(
        run_name=name,
        task_key="main",
        payload={"run_name": name, "tasks": [{"task_key": "main"}]},
        python_file="local/jobs/trivial_spark.py",
        parameters=[],
        token=None,
        timeout=0,
    )
    store.update(run_id, life_cycle_state="TERMINATED", result_state="SUCCESS", log_path=str(log))
    return run_id
