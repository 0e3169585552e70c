"""What every job entry script shares: its argument parser and how an expected failure ends.

A job fails in one of two ways. An *expected* failure (bad input, a broken contract, a data
check) raises :class:`JobError` or ``ValueError`` and ends the run with one line naming the
problem, which the Databricks run output and the Airflow task log show as the error. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator


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
