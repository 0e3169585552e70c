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
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence

from clickstream.core.schema import identifier, parse_ds

DATE_ARGUMENTS = ("ds", "start_ds", "end_ds", "logical_date")


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


def parse_arguments(
    cli: argparse.ArgumentParser, argv: Sequence[str] | None, job: str
) -> argparse.Namespace:
    """``cli.parse_args(argv)``, then :func:`check_sql_arguments` (a refusal is one line)."""
    args = cli.parse_args(argv)
    with expected_failures(job):
        return check_sql_arguments(args)
