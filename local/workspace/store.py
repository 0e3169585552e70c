"""Runs of the local workspace, kept in SQLite so they survive restarts."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

IN_FLIGHT = ("QUEUED", "PENDING", "RUNNING", "TERMINATING")
# Databricks hands out distinct ids to a run and to its task runs; so do we.
TASK_RUN_OFFSET = 1_000_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_name TEXT NOT NULL,
    task_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    python_file TEXT NOT NULL,
    parameters TEXT NOT NULL,
    idempotency_token TEXT UNIQUE,
    timeout_seconds INTEGER NOT NULL DEFAULT 0,
    life_cycle_state TEXT NOT NULL,
    result_state TEXT,
    state_message TEXT NOT NULL DEFAULT '',
    submit_time INTEGER NOT NULL,
    start_time INTEGER NOT NULL DEFAULT 0,
    running_time INTEGER NOT NULL DEFAULT 0,
    end_time INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_trace TEXT,
    log_path TEXT NOT NULL DEFAULT ''
)
"""


# Columns added after the first release, with their DDL: added to an existing store on open.
# running_time: when the run's task started executing (setup ends), for the setup duration.
ADDED_COLUMNS = {"running_time": "INTEGER NOT NULL DEFAULT 0"}


def now_ms() -> int:
    return int(time.time() * 1000)


class RunStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)
            columns = {row["name"] for row in self._db.execute("PRAGMA table_info(runs)")}
            for column, ddl in ADDED_COLUMNS.items():
                if column not in columns:  # a store written by an older workspace
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} {ddl}")

    def mark_in_flight_as_lost(self) -> int:
        """After a restart nothing is running: in-flight runs end as INTERNAL_ERROR."""
        marks = ",".join("?" * len(IN_FLIGHT))
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE runs SET life_cycle_state='INTERNAL_ERROR', result_state='FAILED', "
                f"state_message='The local workspace restarted while the run was in flight', "
                f"end_time=? WHERE life_cycle_state IN ({marks})",
                (now_ms(), *IN_FLIGHT),
            )
            return cursor.rowcount

    def create(self, *, run_name, task_key, payload, python_file, parameters, token, timeout):
        """Insert a QUEUED run; a repeated idempotency token returns the existing run id."""
        with self._lock:
            if token:
                row = self._db.execute(
                    "SELECT run_id FROM runs WHERE idempotency_token=?", (token,)
                ).fetchone()
                if row:
                    return row["run_id"], False
            cursor = self._db.execute(
                "INSERT INTO runs (run_name, task_key, payload, python_file, parameters, "
                "idempotency_token, timeout_seconds, life_cycle_state, state_message, submit_time)"
                " VALUES (?,?,?,?,?,?,?,'QUEUED','Waiting for the local cluster',?)",
                (
                    run_name,
                    task_key,
                    json.dumps(payload),
                    python_file,
                    json.dumps(parameters),
                    token,
                    timeout,
                    now_ms(),
                ),
            )
            return cursor.lastrowid, True

    def update(self, run_id: int, **fields) -> bool:
        """Set ``fields`` of a run in flight; False, and nothing changed, when the run has
        already ended (or does not exist): a terminal state is final, so a cancel recorded
        first is never overwritten by a late PENDING, RUNNING or SUCCESS, nor the reverse."""
        columns = ", ".join(f"{key}=?" for key in fields)
        marks = ",".join("?" * len(IN_FLIGHT))
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE runs SET {columns} WHERE run_id=? AND life_cycle_state IN ({marks})",
                (*fields.values(), run_id, *IN_FLIGHT),
            )
            return cursor.rowcount > 0

    def get(self, run_id: int) -> dict | None:
        if run_id > TASK_RUN_OFFSET:
            run_id -= TASK_RUN_OFFSET
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return dict(row) if row else None

    def list(self, limit: int, offset: int) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM runs ORDER BY run_id DESC LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return [dict(r) for r in rows]

    def page(
        self,
        limit: int,
        *,
        before_run_id: int | None = None,
        offset: int = 0,
        start_time_from: int | None = None,
        start_time_to: int | None = None,
        active: bool | None = None,
    ) -> list[dict]:
        """Up to ``limit`` runs, newest first (run ids grow with submission, and runs leave
        the queue in that order), of ids below ``before_run_id`` (the page token), skipping
        ``offset``; filtered by start time (ms, both ends included: the start of a run still
        queued is its submission) and by being in flight (``active``) or finished."""
        where, values = [], []
        if before_run_id is not None:
            where.append("run_id < ?")
            values.append(before_run_id)
        start = "(CASE WHEN start_time > 0 THEN start_time ELSE submit_time END)"
        if start_time_from is not None:
            where.append(f"{start} >= ?")
            values.append(start_time_from)
        if start_time_to is not None:
            where.append(f"{start} <= ?")
            values.append(start_time_to)
        if active is not None:
            marks = ",".join("?" * len(IN_FLIGHT))
            where.append(f"life_cycle_state {'' if active else 'NOT '}IN ({marks})")
            values.extend(IN_FLIGHT)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._lock:
            rows = self._db.execute(
                f"{sql} ORDER BY run_id DESC LIMIT ? OFFSET ?", (*values, limit, offset)
            ).fetchall()
        return [dict(r) for r in rows]

    def count(self, life_cycle_state: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM runs WHERE life_cycle_state=?", (life_cycle_state,)
            ).fetchone()
        return row[0]

    def next_queued(self) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM runs WHERE life_cycle_state='QUEUED' ORDER BY run_id LIMIT 1"
            ).fetchone()
        return dict(row) if row else None
