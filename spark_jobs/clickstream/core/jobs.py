"""What every job entry script shares: its argument parser and how an expected failure ends.

A job fails in one of two ways. An *expected* failure (bad input, a broken contract, a data
check) raises :class:`JobError` or ``ValueError`` and ends the run with one line naming the
problem, which the Databricks run output and the Airflow task log show as the error. Anything
else is a bug and keeps its traceback.

:func:`parse_arguments` validates, before any Spark or MLflow call, every parameter that ends
up in SQL text (a ``replaceWhere`` predicate, a MERGE condition, a table name): ``--ds``,
``--start-ds`` and ``--end-ds`` must be calendar dates, ``--catalog`` and every ``--*-schema``
plain identifiers. A crafted value (``2019-10-01' OR '1'='1``, ``x; DROP TABLE y``,
``spark_catalog.bronze``) ends the run with one line; the library functions validate again
where they build the SQL.

It validates every path argument too (:data:`PATH_ARGUMENTS`, and any ``--*-dir``, ``--*-path``,
``--*-file``, ``--*-root`` one): on the local workspace (``LOCAL_VOLUMES_ROOT`` set, as the
workspace sets it for every job) it must be a ``/Volumes/<catalog>/<schema>/<volume>/...`` path
that stays inside the Volumes root, ``..`` parts and symlinks pointing out refused, so a job is
never made to write to ``/tmp/...`` or the project folder, nor to copy a file of the machine
where the Files API would serve it. Without ``LOCAL_VOLUMES_ROOT`` (Databricks, where Unity
Catalog's permissions govern; a test calling a job with plain folders) paths are left as they
are, as :func:`clickstream.core.volumes.local_path` leaves them.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence

from clickstream.core.schema import identifier, parse_ds
from clickstream.core.volumes import resolve_volume, volumes_root

DATE_ARGUMENTS = ("ds", "start_ds", "end_ds", "logical_date")
# Arguments (argparse dests) that name a file or folder; a dest ending in PATH_SUFFIXES is one
# as well. tests/security/test_path_parameters.py fails on a job argument that looks like a path
# and is neither.
PATH_ARGUMENTS = frozenset(
    ("output", "input", "landing_dir", "checkpoint", "ground_truth", "volume_root")
)
PATH_SUFFIXES = ("_dir", "_path", "_file", "_folder", "_root", "_output", "_input")


class JobError(RuntimeError):
    """An expected failure of a job (bad input or a broken invariant), shown as one line."""


def parser(doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


@contextlib.contextmanager
def expected_failures(job: str) -> Iterator[None]:
    """Turn a :class:`JobError` or ``ValueError`` into ``SystemExit("<job> failed: ...")``."""
    try:
        yield
    except (JobError, ValueError) as error:
        raise SystemExit(f"{job} failed: {error}") from None


def check_sql_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Refuse a date or identifier argument that is not one; dates come back canonical."""
    for name, value in vars(args).items():
        if value is None:
            continue
        if name in DATE_ARGUMENTS:
            setattr(args, name, parse_ds(value))
        elif name == "catalog" or name.endswith("_schema"):
            identifier(value)
    return args


def is_path_argument(name: str) -> bool:
    """Whether the argument ``name`` (an argparse dest) names a file or a folder."""
    return name in PATH_ARGUMENTS or name.endswith(PATH_SUFFIXES)


def check_path_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """On the local workspace, refuse a path argument that is not a Volume path inside its root
    (one line naming the argument and the value); elsewhere leave them as they are."""
    root = volumes_root()
    if root is None:
        return args
    for name, value in vars(args).items():
        if value is None or not is_path_argument(name):
            continue
        for item in value if isinstance(value, list | tuple) else (value,):
            try:
                resolve_volume(str(item), root)
            except ValueError as error:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} {str(item)!r} {error}") from None
    return args


def parse_arguments(
    cli: argparse.ArgumentParser, argv: Sequence[str] | None, job: str
) -> argparse.Namespace:
    """``cli.parse_args(argv)``, then :func:`check_sql_arguments` and
    :func:`check_path_arguments` (a refusal is one line)."""
    args = cli.parse_args(argv)
    with expected_failures(job):
        return check_path_arguments(check_sql_arguments(args))
