"""Wait until the landing folder of a date holds a file to ingest.

The ingest job reads every ``*.csv`` and ``*.csv.gz`` of ``<landing>/<ds>/`` (names starting
with ``.`` or ``_`` are skipped, as Spark skips them). :class:`LandingFilesSensor` lists that
folder through the Databricks Files API, with the same Airflow connection as the jobs
(``databricks_conn_id``, see ``workspace_files.py``), and succeeds as soon as one such file is
there; its names are the task's return value (XCom). A missing folder, or a folder holding only
other files (``.txt``, a hidden partial upload, a sub-folder), means "not yet".

Reschedule mode by default: between pokes the sensor holds no worker slot. On timeout it fails
without retry, naming the folder and the file patterns it waited for; access denied or a path
that is not a Volume fail at once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from ecom_plugins import workspace_files

if TYPE_CHECKING:
    from airflow.sdk import Context

LANDING_PATTERNS: tuple[str, ...] = ("*.csv", "*.csv.gz")


def list_folder(path: str, *, databricks_conn_id: str = "databricks_default") -> list[str] | None:
    """Names of the files (not sub-folders) directly in the Volume folder ``path``; None when
    the folder does not exist.

    :raises AirflowException: access denied, or not a Volume path.
    """
    from databricks.sdk.errors import BadRequest, NotFound, PermissionDenied, Unauthenticated

    if not path.startswith("/Volumes/"):
        raise AirflowException(f"{path!r} is not a Unity Catalog Volume path (/Volumes/...)")
    client = workspace_files.workspace_client(databricks_conn_id)
    try:
        return [
            entry.name or entry.path.rsplit("/", 1)[-1]
            for entry in client.files.list_directory_contents(path.rstrip("/"))
            if not entry.is_directory
        ]
    except NotFound:
        return None
    except (PermissionDenied, Unauthenticated) as error:
        raise AirflowException(
            f"Permission denied listing {path} with connection {databricks_conn_id!r} "
            f"({type(error).__name__}): {error}. The token's principal needs READ VOLUME on the "
            "volume (and USE CATALOG / USE SCHEMA on its parents)."
        ) from error
    except BadRequest as error:
        raise AirflowException(f"The workspace refused the path {path}: {error}") from error


class LandingFilesSensor(BaseSensorOperator):
    """Succeed once the Volume folder ``folder`` holds a file matching one of ``patterns``.

    :param folder: Volume folder of the date, e.g. ``/Volumes/ecom/raw/landing/events/{{ ds }}``
        (templated).
    :param patterns: file name patterns (``fnmatch``, case-sensitive) of the files to ingest.
    :param databricks_conn_id: connection of the workspace that holds the Volume.
    """

    template_fields = ("folder",)
    ui_color = "#e8f6ee"

    def __init__(
        self,
        *,
        folder: str,
        patterns: Sequence[str] = LANDING_PATTERNS,
        databricks_conn_id: str = "databricks_default",
        mode: str = "reschedule",
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, **kwargs)
        self.folder = folder
        self.patterns = tuple(patterns)
        self.databricks_conn_id = databricks_conn_id

    @property
    def waited_for(self) -> str:
        """What the sensor waits for, as logged and named on timeout."""
        folder = self.folder.rstrip("/")
        return " or ".join(f"{folder}/{pattern}" for pattern in self.patterns)

    def matching(self, names: list[str]) -> list[str]:
        """The names the ingest job would read: matching a pattern, not hidden."""
        return sorted(
            name
            for name in names
            if not name.startswith((".", "_"))
            and any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        names = list_folder(self.folder, databricks_conn_id=self.databricks_conn_id)
        if names is None:
            self.log.info("Waiting for %s: the folder does not exist yet", self.waited_for)
            return False
        found = self.matching(names)
        if not found:
            others = ", ".join(sorted(names)[:10]) or "nothing"
            self.log.info("Waiting for %s: the folder holds %s", self.waited_for, others)
            return False
        self.log.info("Landing files in %s: %s", self.folder, ", ".join(found))
        return PokeReturnValue(is_done=True, xcom_value=found)

    def execute(self, context: Context) -> list[str]:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as error:
            raise AirflowSensorTimeout(
                f"No file to ingest appeared within {self.timeout:.0f} s: waited for "
                f"{self.waited_for} (hidden .* and _* files do not count). Is the day's export "
                f"late or missing? Deliver it, then clear this task. ({error})"
            ) from error
