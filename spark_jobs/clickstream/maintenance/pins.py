"""The Delta versions that must stay readable: who pins which version of which table.

* **The registered models.** Every training records the Delta version of each table it read as
  a lineage tag of its runs (``delta_version.<table>``, :mod:`clickstream.models.registry`), and
  reads exactly that version (``VERSION AS OF``). Every version still registered, of every
  registered model named (the champion, the challenger and the older ones), pins those versions:
  a model stays reproducible from the data it was trained on for as long as it is registered.
* **The pipelines.** The feature job refreshes the daily activity from silver's change data
  feed after the silver version its last refresh recorded; that version (and the change files
  after it) must stay readable, or the next refresh rebuilds the activity from all of silver.

A version whose lineage cannot be read (its run was deleted, a tag is malformed) is an error,
not a guess: without it, VACUUM could delete the files a registered model was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from clickstream.core.contracts import SILVER_EVENTS
from clickstream.core.jobs import JobError
from clickstream.models import registry
from clickstream.pipeline.activity import refreshed_silver_version

# A registered model name goes into a registry search filter: plain names only.
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class LineageError(JobError):
    """A registered model version whose pinned Delta versions cannot be known."""


@dataclass(frozen=True)
class Pin:
    """Version ``version`` of ``table`` (``catalog.schema.table``) must stay readable for
    ``holder`` (a model version, or a pipeline)."""

    table: str
    version: int
    holder: str


def model_name(name: str) -> str:
    """``name``, refused unless it is a plain registered model name (it goes into a filter)."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a registered model name")
    return name


def _model_versions(client: MlflowClient, name: str) -> list:
    """Every registered version of ``name`` (none when the model does not exist)."""
    found, token = [], None
    while True:
        page = client.search_model_versions(f"name = '{name}'", page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return sorted(found, key=lambda v: int(v.version))


def _holder(name: str, version, champion: str | None) -> str:
    aliases = set(getattr(version, "aliases", None) or ())
    if champion == str(version.version):
        aliases.add(registry.CHAMPION)
    shown = f" [{', '.join(sorted(aliases))}]" if aliases else ""
    return f"{name} v{version.version}{shown}"


def model_pins(client: MlflowClient, model_names: Iterable[str]) -> list[Pin]:
    """The versions pinned by every registered version of the models ``model_names``: the
    lineage tags of the run each version was logged from (and of the version itself)."""
    names = [model_name(name) for name in model_names]
    pins = []
    for name in names:
        champion = registry.alias_version(client, name, registry.CHAMPION)
        for version in _model_versions(client, name):
            holder = _holder(name, version, champion)
            tags = dict(version.tags or {})
            if version.run_id:
                try:
                    tags.update(client.get_run(version.run_id).data.tags)
                except MlflowException as error:
                    raise LineageError(
                        f"{holder}: its run {version.run_id} cannot be read "
                        f"({error.error_code}), so the Delta versions it was trained on are "
                        "unknown; nothing was vacuumed (delete the model version if it is no "
                        "longer needed)"
                    ) from None
            try:
                lineage = registry.delta_versions(tags)
            except registry.RegistryError as error:
                raise LineageError(f"{holder}: {error}; nothing was vacuumed") from None
            pins += [Pin(table, v, holder) for table, v in sorted(lineage.items())]
    return pins


def pipeline_pins(spark, *, catalog: str, silver_schema: str = "silver") -> list[Pin]:
    """The silver version the next feature run reads the change data feed after."""
    version = refreshed_silver_version(spark, catalog=catalog, silver_schema=silver_schema)
    if version is None:
        return []
    return [
        Pin(
            SILVER_EVENTS.name(catalog, silver_schema),
            version,
            "the daily activity's last refresh (the next feature run reads the change feed "
            "after it)",
        )
    ]
