"""A small client of the Airflow 3 REST API (``/api/v2``), for ``make run`` and the e2e tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import requests

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowAPIError(RuntimeError):
    pass


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        response = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": password},
            timeout=timeout,
        )
        if response.status_code not in (200, 201):
            raise AirflowAPIError(f"login to {base_url} failed: {response.status_code}")
        token = response.json()["access_token"]
        self._session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, *, retry_busy: float = 0, **kwargs: Any) -> Any:
        """One API call; ``retry_busy`` seconds of retries while Airflow answers 503.

        On SQLite a write can meet "database is locked" while the scheduler writes; the API
        then answers 503 (or 500 "Database error") after rolling back, so the call can be
        repeated.
        """
        deadline = time.monotonic() + retry_busy
        delay = 1.0
        while True:
            response = self._session.request(
                method, f"{self.base_url}/api/v2{path}", timeout=self.timeout, **kwargs
            )
            busy = response.status_code == 503 or (
                response.status_code == 500 and "Database error" in response.text
            )
            if not busy or time.monotonic() + delay > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        if response.status_code >= 400:
            raise AirflowAPIError(
                f"{method} {path} -> {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed every DAG; fail on import errors."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while True:
            errors = self.request("GET", "/importErrors")["import_errors"]
            if errors:
                details = "\n".join(f"{e['filename']}: {e['stack_trace']}" for e in errors)
                raise AirflowAPIError(f"DAG import errors:\n{details}")
            found = {
                d["dag_id"] for d in self.request("GET", "/dags", params={"limit": 100})["dags"]
            }
            if wanted <= found:
                return
            if time.monotonic() > deadline:
                raise AirflowAPIError(f"DAGs not parsed after {timeout:.0f}s: {wanted - found}")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", retry_busy=60, json={"is_paused": False})

    def create_backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        *,
        max_active_runs: int | None = None,
        wait_for_other: float = 600,
        dag_run_conf: dict | None = None,
    ) -> dict:
        """Create a backfill of [from_date, to_date] (each run with ``dag_run_conf``).

        Airflow runs one backfill per DAG at a time and refuses another with 409. When the
        running one covers the same dates (a second ``make run``), it is returned. When it
        covers other dates, this waits up to ``wait_for_other`` seconds for it to complete
        (the scheduler marks a backfill completed a loop after its last run ends) and
        creates the new one then: returning the other backfill would wait on the wrong dates.

        A backfill has its own concurrency; by default it is the DAG's ``max_active_runs``, so
        a DAG that must run one date at a time does so in a backfill too.
        """
        if max_active_runs is None:
            max_active_runs = self.request("GET", f"/dags/{dag_id}/details")["max_active_runs"]
        body = {
            "dag_id": dag_id,
            "from_date": f"{from_date}T00:00:00Z",
            "to_date": f"{to_date}T00:00:00Z",
            "max_active_runs": max_active_runs,
            # A second `make run` reruns only what failed; completed dates are kept.
            "reprocess_behavior": "failed",
        }
        if dag_run_conf is not None:
            body["dag_run_conf"] = dag_run_conf
        deadline = time.monotonic() + wait_for_other
        while True:
            try:
                return self.request("POST", "/backfills", retry_busy=120, json=body)
            except AirflowAPIError as error:
                if " 409:" not in str(error):
                    raise
            running = self.running_backfills(dag_id)
            same = [
                b
                for b in running
                if (b["from_date"], b["to_date"]) == (body["from_date"], body["to_date"])
            ]
            if same:
                return same[0]
            if time.monotonic() > deadline:
                other = (
                    ", ".join(
                        f"{b['id']} ({b['from_date'][:10]}..{b['to_date'][:10]})" for b in running
                    )
                    or "none listed"
                )
                raise AirflowAPIError(
                    f"backfill of {dag_id} for {from_date}..{to_date} refused (409): another "
                    f"backfill is still running after {wait_for_other:.0f}s: {other}"
                )
            time.sleep(3)

    def running_backfills(self, dag_id: str) -> list[dict]:
        backfills = self.request("GET", "/backfills", params={"dag_id": dag_id})["backfills"]
        return [b for b in backfills if b["completed_at"] is None]

    def dag_runs(self, dag_id: str, from_date: str, to_date: str) -> list[dict]:
        params = {
            "logical_date_gte": f"{from_date}T00:00:00Z",
            "logical_date_lte": f"{to_date}T00:00:00Z",
            "limit": 1000,
            "order_by": "logical_date",
        }
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self.request("GET", path)["task_instances"]

    def clear_task(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Clear one task instance, as the UI's *Clear* button does."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [task_id],
            "only_failed": False,
            "reset_dag_runs": True,
        }
        return self.request("POST", f"/dags/{dag_id}/clearTaskInstances", retry_busy=60, json=body)[
            "task_instances"
        ]

    def dag_run(self, dag_id: str, run_id: str) -> dict | None:
        """One DAG run, or None when it does not exist (yet)."""
        try:
            return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        except AirflowAPIError as error:
            if " 404:" in str(error):
                return None
            raise

    def all_dag_runs(self, dag_id: str) -> list[dict]:
        params = {"limit": 1000, "order_by": "logical_date"}
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def fail_dag_run(self, dag_id: str, run_id: str, note: str) -> None:
        """Mark a run failed (its running tasks are stopped) and say why in the run's note."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}"
        self.request("PATCH", path, retry_busy=60, json={"state": "failed"})
        self.request(
            "PATCH", path, retry_busy=60, params={"update_mask": "note"}, json={"note": note}
        )

    def delete_dag_run(self, dag_id: str, run_id: str) -> None:
        """Delete a DAG run (its task instances and XComs go with it)."""
        self.request("DELETE", f"/dags/{dag_id}/dagRuns/{run_id}", retry_busy=60)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        """The value of one XCom (deserialised), or None when the task pushed none."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        try:
            return self.request("GET", path, params={"deserialize": "true"})["value"]
        except AirflowAPIError as error:
            if " 404:" in str(error):
                return None
            raise
