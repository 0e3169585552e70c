"""The MLflow model registry with aliases (never stages): challenger, champion, rollback.

* Every training registers its best candidate as a new version and points ``challenger`` at
  it. When the promotion rule says so, ``champion`` moves to that version too. The version
  then carries the tag ``previous_champion`` (the version it replaced), which is what a
  rollback returns to.
* Every decision is written on the version (``decision``, ``decision_reason``) and on the
  training's MLflow run, so "why is v7 champion?" has an answer in the registry itself.
* :func:`rollback` re-points ``champion`` to the version the current champion replaced (or to a
  named version) and records it; serving picks it up at its next run.

Works the same against a local tracking server (SQLite) and Databricks (Unity Catalog names
``catalog.schema.model``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from clickstream.core.jobs import JobError

CHAMPION = "champion"
CHALLENGER = "challenger"
# The lineage of a training, on its runs: ``delta_version.<catalog>.<schema>.<table>`` = the
# Delta version it read (``VERSION AS OF``). Table maintenance keeps these versions readable.
DELTA_VERSION_TAG = "delta_version."


class RegistryError(JobError):
    """The registry does not hold what an operation needs (no champion, no previous version)."""


@dataclass(frozen=True)
class ChampionRef:
    name: str
    version: str

    @property
    def uri(self) -> str:
        # The version, not the alias: what was scored stays reproducible if the alias moves.
        return f"models:/{self.name}/{self.version}"


def delta_version_tags(versions: Mapping[str, int]) -> dict[str, str]:
    """``{table: version}`` as the lineage tags of a training run."""
    return {f"{DELTA_VERSION_TAG}{table}": str(int(v)) for table, v in versions.items()}


def delta_versions(tags: Mapping[str, str]) -> dict[str, int]:
    """The ``{table: version}`` lineage among a run's ``tags``; a malformed one is an error."""
    versions = {}
    for key, value in tags.items():
        if key.startswith(DELTA_VERSION_TAG):
            table = key.removeprefix(DELTA_VERSION_TAG)
            if not table or not str(value).isdigit():
                raise RegistryError(f"lineage tag {key}={value!r} is not <table> = <version>")
            versions[table] = int(value)
    return versions


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None (also when the model does not exist yet)."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def champion(client: MlflowClient, name: str) -> ChampionRef:
    """The current champion; a clear error naming the DAG to run when there is none."""
    version = alias_version(client, name, CHAMPION)
    if version is None:
        raise RegistryError(
            f"model {name!r} has no version with the alias '{CHAMPION}': run the "
            "model_training DAG first (serving never trains a model)"
        )
    return ChampionRef(name, str(version))


def register_challenger(
    client: MlflowClient, name: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> str:
    """Register ``model_uri`` as a new version of ``name`` with the ``challenger`` alias.

    ``mlflow.register_model`` (not ``create_model_version``): it resolves MLflow 3's logged
    model URIs (``models:/m-...``) to their source, which a tracking server requires.
    """
    import mlflow

    version = mlflow.register_model(model_uri, name, tags={**tags, "run_id": run_id}).version
    client.set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


def record_decision(
    client: MlflowClient, name: str, version: str, *, promote: bool, reason: str
) -> str | None:
    """Apply a promotion decision to ``version``; returns the champion version it replaced."""
    previous = alias_version(client, name, CHAMPION)
    client.set_model_version_tag(name, version, "decision", "promoted" if promote else "kept")
    client.set_model_version_tag(name, version, "decision_reason", reason)
    if promote:
        if previous is not None:
            client.set_model_version_tag(name, version, "previous_champion", str(previous))
        client.set_registered_model_alias(name, CHAMPION, version)
    return str(previous) if previous is not None else None


def rollback(
    client: MlflowClient,
    name: str,
    to_version: str | None = None,
    from_version: str | None = None,
) -> tuple[str, str]:
    """Point ``champion`` back to the version it replaced (or ``to_version``).

    Returns (from_version, to_version). The rolled-back version keeps its history; the
    restored one is tagged with when and from where it was restored.

    ``from_version`` makes the call safe to repeat (a retried job, a command run twice): the
    rollback happens only while ``champion`` is still that version. When ``champion`` already
    points at the version restored from it, the call changes nothing and returns the same pair;
    when anything else moved ``champion`` in between, it refuses instead of guessing.
    """
    current = champion(client, name).version
    if from_version is not None and current != str(from_version):
        restored_from = client.get_model_version(name, current).tags.get("restored_from")
        if restored_from == str(from_version) and to_version in (None, current):
            return str(from_version), current
        raise RegistryError(
            f"champion of {name!r} is v{current}, not v{from_version}: it moved since the "
            "rollback was asked for; check the registry and name the versions again"
        )
    if to_version is None:
        tags = client.get_model_version(name, current).tags
        to_version = tags.get("previous_champion")
        if not to_version:
            raise RegistryError(
                f"champion v{current} of {name!r} replaced no earlier champion: there is "
                "nothing to roll back to (pass a version explicitly)"
            )
    try:
        client.get_model_version(name, str(to_version))
    except MlflowException:
        raise RegistryError(f"{name!r} has no version {to_version}") from None
    client.set_registered_model_alias(name, CHAMPION, str(to_version))
    client.set_model_version_tag(name, current, "rolled_back", "true")
    client.set_model_version_tag(name, str(to_version), "restored_from", current)
    return current, str(to_version)
