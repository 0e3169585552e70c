"""Where the local stack lives and how its clients reach it: the state folder, the ports, the
local credentials and the environment variables the official clients read.

Ports and the state folder can be moved with ``ECOM_WORKSPACE_PORT`` (8765),
``ECOM_MLFLOW_PORT`` (5000), ``ECOM_AZURITE_PORT`` (10000), ``ECOM_AIRFLOW_PORT`` (8080) and
``ECOM_LOCAL_DIR`` (``.local``), e.g. to run a second stack for the tests.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Azurite's documented development account: public, identical in every Azurite install.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AIRFLOW_USER = "admin"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file readable by its owner only: created with mode 0600 (and an
    existing file set to 0600 before anything is written), so no other user ever sees the
    content, whatever the umask; a symlink at ``path`` is refused."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass
class StackConfig:
    """One local stack: its state folder, the ports of its services and its credentials.

    ``test_dags``: a folder of DAGs that Airflow loads beside the project's, as a DAG bundle of
    its own (``test-dags``); the end-to-end tests' stack sets it, ``make up`` never does.
    """

    state: Path
    workspace_port: int
    mlflow_port: int
    azurite_port: int
    airflow_port: int
    workspace_mode: str = "warm"
    secrets: dict = field(default_factory=dict)
    test_dags: Path | None = None

    @classmethod
    def from_env(cls) -> StackConfig:
        state = Path(os.environ.get("ECOM_LOCAL_DIR", ROOT / ".local")).resolve()
        config = cls(
            state=state,
            workspace_port=int(os.environ.get("ECOM_WORKSPACE_PORT", "8765")),
            mlflow_port=int(os.environ.get("ECOM_MLFLOW_PORT", "5000")),
            azurite_port=int(os.environ.get("ECOM_AZURITE_PORT", "10000")),
            airflow_port=int(os.environ.get("ECOM_AIRFLOW_PORT", "8080")),
            workspace_mode=os.environ.get("ECOM_WORKSPACE_MODE", "warm"),
        )
        config.secrets = config._load_secrets()
        return config

    def _load_secrets(self) -> dict:
        """Random local credentials, created once per state folder and kept out of git."""
        path = self.state / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        self.state.mkdir(parents=True, exist_ok=True)
        values = {
            "workspace_token": "local-" + secrets.token_hex(16),
            "airflow_password": secrets.token_urlsafe(12),
        }
        write_private(path, json.dumps(values))
        return values

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def workspace_url(self) -> str:
        return f"http://127.0.0.1:{self.workspace_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def azure_connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.azurite_port}/{AZURITE_ACCOUNT};"
        )

    def client_env(self) -> dict[str, str]:
        """What a client of the stack needs, under the names the official clients read."""
        return {
            "DATABRICKS_HOST": self.workspace_url,
            "DATABRICKS_TOKEN": self.secrets["workspace_token"],
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "AZURE_STORAGE_CONNECTION_STRING": self.azure_connection_string,
            "AIRFLOW_API_URL": self.airflow_url,
            "AIRFLOW_USERNAME": AIRFLOW_USER,
            "AIRFLOW_PASSWORD": self.secrets["airflow_password"],
        }

    def airflow_connections(self) -> dict[str, str]:
        # The Databricks hook drops scheme and port from `host`: they go in their own fields.
        databricks = {
            "conn_type": "databricks",
            "host": "127.0.0.1",
            "port": self.workspace_port,
            "schema": "http",
            "password": self.secrets["workspace_token"],
        }
        wasb = {
            "conn_type": "wasb",
            "extra": {"connection_string": self.azure_connection_string},
        }
        return {
            "AIRFLOW_CONN_DATABRICKS_DEFAULT": json.dumps(databricks),
            "AIRFLOW_CONN_WASB_DEFAULT": json.dumps(wasb),
        }


def write_stack_env(config: StackConfig) -> Path:
    """``<state>/stack.env``: the client settings, for a shell to source."""
    path = config.state / "stack.env"
    lines = ["# Written by `make up`: source it to point clients at the local stack."]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in config.client_env().items()]
    write_private(path, "\n".join(lines) + "\n")
    return path
