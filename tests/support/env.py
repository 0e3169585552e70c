"""The one way the tests set environment variables for a block of code."""

from __future__ import annotations

import contextlib

import pytest


@contextlib.contextmanager
def environment(**variables: str | None):
    """Set ``variables`` (None: unset) for the ``with`` block, and restore them after it.

    For fixtures and helpers that outlive one test (``monkeypatch`` is function-scoped);
    Airflow reads connections (``AIRFLOW_CONN_*``) and the jobs the ``/Volumes`` root
    (``LOCAL_VOLUMES_ROOT``) from the environment of the test process."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        yield
