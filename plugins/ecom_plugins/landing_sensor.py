"""Wait until the landing folder of a date holds its complete delivery.

The ingest job reads every ``*.csv`` and ``*.csv.gz`` of ``<landing>/<ds>/`` (names starting
with ``.`` or ``_`` are skipped, as Spark skips them). :class:`LandingFilesSensor` lists that
folder through the Databricks Files API, with the same Airflow connection as the jobs
(``databricks_conn_id``, see ``workspace_files.py``), and succeeds once the date is complete by
the environment's rule (:class:`Completeness`); the names of the files are the task's return
value (XCom). A missing folder, or a folder holding only other files (``.txt``, a hidden
partial upload, a sub-folder), means "not yet".

Exports arrive in parts and late, so "one file is there" is not "the day is there". The rules:

===================  ===========================================================================
``any``              one file to ingest is there (a single-file export)
``marker _SUCCESS``  the exporter's marker file is there (written after its last part); at
                     least one file to ingest is there too
``files 3``          at least that many files to ingest are there
``settle 15m``       a file to ingest is there and none changed for that long (s, m or h)
===================  ===========================================================================

A part that arrives after the date was let through is still ingested, once, by the next
trigger of the streaming ingest; the rule decides when the daily chain may start on the date.

Reschedule mode by default: between pokes the sensor holds no worker slot. On timeout it fails
without retry, naming the folder and the file patterns it waited for; access denied or a path
that is not a Volume fail at once.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from ecom_plugins import workspace_files

if TYPE_CHECKING:
    from airflow.sdk import Context

LANDING_PATTERNS: tuple[str, ...] = ("*.csv", "*.csv.gz")


@dataclass(frozen=True)
class FileEntry:
    """A file of a landing folder, as the Files API lists it."""

    name: str
    size: int
    modified_ms: int


_UNITS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Completeness:
    """When a date's landing folder holds its whole delivery (the rules: module docstring).

    :param kind: ``any``, ``marker``, ``files`` or ``settle``.
    :param marker: the marker file's name (``marker``).
    :param count: files to ingest expected at least (``files``).
    :param settle_seconds: quiet time after the last change (``settle``).
    """

    kind: str
    marker: str = ""
    count: int = 1
    settle_seconds: int = 0

    @classmethod
    def parse(cls, rule: str) -> Completeness:
        """``any``, ``marker <name>``, ``files <n>`` or ``settle <n>s|m|h``; a clear error for
        anything else."""
        words = rule.split()
        kind = words[0] if words else ""
        if kind == "any" and len(words) == 1:
            return cls("any")
        if kind == "marker" and len(words) == 2 and "/" not in words[1]:
            return cls("marker", marker=words[1])
        if kind == "files" and len(words) == 2 and words[1].isdigit() and int(words[1]) >= 1:
            return cls("files", count=int(words[1]))
        match = re.fullmatch(r"(\d+)([smh])", words[1]) if len(words) == 2 else None
        if kind == "settle" and match:
            return cls("settle", settle_seconds=int(match[1]) * _UNITS[match[2]])
        raise ValueError(
            f"landing completeness rule {rule!r} is not one of: 'any', 'marker <file name>', "
            "'files <n>' (n >= 1), 'settle <n>s|m|h'"
        )

    def __str__(self) -> str:
        if self.kind == "marker":
            return f"the marker file {self.marker}"
        if self.kind == "files":
            return f"{self.count} file(s) to ingest"
        if self.kind == "settle":
            return f"a file to ingest and no change for {self.settle_seconds} s"
        return "a file to ingest"

    def missing(self, data: list[FileEntry], others: list[str], now_ms: int) -> str | None:
        """What the date still lacks (None: complete), given its files to ingest (``data``) and
        the folder's other names."""
        if not data:
            return "no file to ingest yet"
        if self.kind == "marker" and self.marker not in others:
            return f"no {self.marker} marker yet ({len(data)} file(s) so far)"
        if self.kind == "files" and len(data) < self.count:
            return f"{len(data)} of {self.count} files"
        if self.kind == "settle":
            quiet = (now_ms - max(f.modified_ms for f in data)) / 1000
            if quiet < self.settle_seconds:
                return (
                    f"the last change was {quiet:.0f} s ago (waiting for {self.settle_seconds} s)"
                )
        return None


def list_entries(
    path: str, *, databricks_conn_id: str = "databricks_default"
) -> list[FileEntry] | None:
    """The files (not sub-folders) directly in the Volume folder ``path``; None when the folder
    does not exist.

    :raises AirflowException: access denied, or not a Volume path.
    """
    from databricks.sdk.errors import BadRequest, NotFound, PermissionDenied, Unauthenticated

    if not path.startswith("/Volumes/"):
        raise AirflowException(f"{path!r} is not a Unity Catalog Volume path (/Volumes/...)")
    client = workspace_files.workspace_client(databricks_conn_id)
    try:
        return [
            FileEntry(
                name=entry.name or entry.path.rsplit("/", 1)[-1],
                size=entry.file_size or 0,
                modified_ms=entry.last_modified or 0,
            )
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


def list_folder(path: str, *, databricks_conn_id: str = "databricks_default") -> list[str] | None:
    """Names of the files directly in the Volume folder ``path`` (:func:`list_entries`)."""
    entries = list_entries(path, databricks_conn_id=databricks_conn_id)
    return None if entries is None else [entry.name for entry in entries]


class LandingFilesSensor(BaseSensorOperator):
    """Succeed once the Volume folder ``folder`` holds the date's delivery: files matching one
    of ``patterns``, complete by the ``completeness`` rule.

    :param folder: Volume folder of the date, e.g. ``/Volumes/ecom/raw/landing/events/{{ ds }}``
        (templated).
    :param patterns: file name patterns (``fnmatch``, case-sensitive) of the files to ingest.
    :param databricks_conn_id: connection of the workspace that holds the Volume.
    :param completeness: when the date is complete (:class:`Completeness`); ``any`` (default):
        at the first file.
    """

    template_fields = ("folder",)
    ui_color = "#e8f6ee"

    def __init__(
        self,
        *,
        folder: str,
        patterns: Sequence[str] = LANDING_PATTERNS,
        databricks_conn_id: str = "databricks_default",
        completeness: str = "any",
        mode: str = "reschedule",
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, **kwargs)
        self.completeness = Completeness.parse(completeness)
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
        entries = list_entries(self.folder, databricks_conn_id=self.databricks_conn_id)
        if entries is None:
            self.log.info("Waiting for %s: the folder does not exist yet", self.waited_for)
            return False
        found = self.matching([e.name for e in entries])
        data = [e for e in entries if e.name in found]
        others = [e.name for e in entries if e.name not in found]
        if not found:
            held = ", ".join(sorted(others)[:10]) or "nothing"
            self.log.info("Waiting for %s: the folder holds %s", self.waited_for, held)
            return False
        missing = self.completeness.missing(data, others, int(time.time() * 1000))
        if missing:
            self.log.info(
                "Waiting for the delivery in %s to be complete (%s): %s; files so far: %s",
                self.folder,
                self.completeness,
                missing,
                ", ".join(found),
            )
            return False
        self.log.info(
            "Landing files in %s (complete: %s): %s",
            self.folder,
            self.completeness,
            ", ".join(found),
        )
        return PokeReturnValue(is_done=True, xcom_value=found)

    def execute(self, context: Context) -> list[str]:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as error:
            raise AirflowSensorTimeout(
                f"No complete delivery appeared within {self.timeout:.0f} s: waited for "
                f"{self.waited_for} (hidden .* and _* files do not count) until "
                f"{self.completeness}. Is the day's export late, missing or partial? Deliver "
                f"it, then clear this task. ({error})"
            ) from error
