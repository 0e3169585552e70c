"""``docker compose run --rm story [make run's options]``: the story of ``make run`` told on the
container stack.

``python -m local.story`` (``make run``) starts its own stack of local processes first, then
generates the events, loads the history, drives the DAGs through the month and its drift, and
prints the summary. Here the stack is the compose services, so this runs the same story with
two differences only:

* the stack is not started but waited for (``docker compose run`` has already started the
  services the ``story`` service depends on);
* the addresses and credentials are the containers': the service shares the network of the
  ``local-workspace`` container, so the workspace and MLflow are on 127.0.0.1 as on the host,
  and Airflow is ``ECOM_AIRFLOW_URL``; the workspace token and the Airflow password come from
  the environment (``.env``), and the story's state is the workspace's (``/data``).
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request

import local.story.cli
import local.story.story
from local.stack.config import StackConfig

WAIT_SECONDS = 600
# What the host's browser opens (the ports docker-compose.yaml publishes on 127.0.0.1).
HOST_URLS = {
    "Airflow UI": "http://127.0.0.1:8080 (user admin, AIRFLOW_ADMIN_PASSWORD of .env)",
    "Job runs": "http://127.0.0.1:8765/jobs/runs",
    "MLflow": "http://127.0.0.1:5000",
}


class ComposeStack(StackConfig):
    """The compose stack as ``make run`` sees a stack: Airflow at ``ECOM_AIRFLOW_URL``, the
    secrets from the environment instead of ``<state>/secrets.json``."""

    @property
    def airflow_url(self) -> str:
        return os.environ["ECOM_AIRFLOW_URL"].rstrip("/")

    def _load_secrets(self) -> dict:
        return {
            "workspace_token": os.environ["DATABRICKS_TOKEN"],
            "airflow_password": os.environ["AIRFLOW_PASSWORD"],
        }


def health_urls(config: StackConfig) -> dict[str, str]:
    return {
        "workspace": f"{config.workspace_url}/health",
        "mlflow": f"{config.mlflow_url}/health",
        "airflow": f"{config.airflow_url}/api/v2/monitor/health",
    }


def wait_for_stack(config: StackConfig, timeout: float = WAIT_SECONDS) -> None:
    """Stands in for ``local.stack.services.up``: the services are the containers'."""
    deadline = time.monotonic() + timeout
    for name, url in health_urls(config).items():
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not healthy at {url} after {timeout:.0f}s")
            time.sleep(3)
        local.story.story.log(f"{name}: ready ({url})")


def main(argv: list[str] | None = None) -> int:
    local.story.cli.StackConfig = ComposeStack
    local.story.story.up = wait_for_stack
    code = local.story.cli.main(argv)
    print("\nFrom the host:\n" + "".join(f"  {k:12s} {v}\n" for k, v in HOST_URLS.items()))
    return code


if __name__ == "__main__":
    sys.exit(main())
