"""Run one command and restart it when it dies, as systemd or Kubernetes would in production.

    python -m local.stack.supervise [--max-restarts 20] -- airflow scheduler

The local stack runs each Airflow component under this supervisor. On SQLite, Airflow's
components race on the same database file: the scheduler can die on a concurrent write
(``StaleDataError`` while a backfill is being created is one case seen here) and Airflow does
not restart it by itself. A restart is safe: the scheduler resumes from the metadata database.

A stop signal (SIGTERM/SIGINT) is forwarded to the command and ends the supervisor; an exit
code 0 ends it too. Restarts back off from 1 s to 30 s; more than ``--max-restarts`` within
10 minutes is a crash loop, and the supervisor gives up with the command's exit code.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections import deque

WINDOW_SECONDS = 600


def log(message: str) -> None:
    print(f"[supervise] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack.supervise", description=__doc__)
    parser.add_argument("--max-restarts", type=int, default=20)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to supervise after --")

    stopping = False
    child: subprocess.Popen | None = None

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    restarts: deque[float] = deque()
    delay = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping or code == 0:
            return code
        now = time.monotonic()
        restarts.append(now)
        while restarts and now - restarts[0] > WINDOW_SECONDS:
            restarts.popleft()
        if len(restarts) > args.max_restarts:
            log(f"{' '.join(command)} exited {len(restarts)} times in 10 minutes; giving up")
            return code
        # A command that ran for a while restarts at once; a crash loop backs off.
        delay = 1.0 if now - started > 60 else min(delay * 2, 30.0)
        log(f"{' '.join(command)} exited with code {code}; restarting in {delay:.0f}s")
        time.sleep(delay)
        if stopping:
            return code


if __name__ == "__main__":
    sys.exit(main())
