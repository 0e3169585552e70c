"""The local "cluster": runs queued job runs on warm drivers or cold processes.

At most ``max_concurrent_runs`` run at once (each warm slot is one driver JVM); the rest wait
as QUEUED, as Databricks job queueing does. Cancelling or timing out a warm run kills its
driver (a fresh one starts for the next run): the only way to stop arbitrary user code for
sure, and what a Databricks cluster restart amounts to.

No run outlives the server: stopping it kills every driver and job process, and a job process
started by a server that dies abruptly kills itself (``runner.exit_with_workspace``), so a run
the restarted server reports as INTERNAL_ERROR really stopped and never races its retry.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from local.spark.runtime import LocalLayout, job_environment
from local.workspace.runner import WORKSPACE_PID_ENV
from local.workspace.store import RunStore, now_ms

log = logging.getLogger("local.workspace")
DRIVER_START_TIMEOUT = 300
# How long the dispatcher waits before trying again after an error of its own.
DISPATCH_RETRY_SECONDS = 0.5


class DriverDied(RuntimeError):
    pass


def _process_environment(layout: LocalLayout) -> dict[str, str]:
    """Environment of a driver or job process started by this server."""
    env = job_environment(layout)
    env["PYTHONPATH"] = os.pathsep.join([str(layout.root), env.get("PYTHONPATH", "")])
    env[WORKSPACE_PID_ENV] = str(os.getpid())
    return env


def _kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


class WarmDriver:
    """One long-lived ``python -m local.workspace.driver`` process."""

    def __init__(self, layout: LocalLayout, index: int):
        env = _process_environment(layout)
        env["LOCAL_DRIVER_LOG"] = str(layout.workspace_dir / f"driver-{index}.log")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.workspace.driver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=layout.root,
            text=True,
            start_new_session=True,
        )
        self._ready = False

    def _read(self, should_stop) -> dict | None:
        """Next protocol line, or None when ``should_stop()`` says to give up."""
        while True:
            if should_stop():
                return None
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if not line:
                    raise DriverDied(f"driver exited with code {self.process.wait()}")
                return json.loads(line)

    def ensure_ready(self, should_stop) -> bool:
        if not self._ready:
            deadline = time.monotonic() + DRIVER_START_TIMEOUT
            if self._read(lambda: should_stop() or time.monotonic() > deadline) is None:
                return False
            self._ready = True
        return True

    def run(self, script: Path, args: list[str], log_path: Path, should_stop) -> dict | None:
        request = {"script": str(script), "args": args, "log": str(log_path)}
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError as error:
            raise DriverDied("driver is not running") from error
        return self._read(should_stop)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        _kill_group(self.process)


class Cluster:
    def __init__(self, store: RunStore, layout: LocalLayout, *, mode: str, slots: int):
        if mode not in ("warm", "cold"):
            raise ValueError("mode must be 'warm' or 'cold'")
        self.store, self.layout, self.mode = store, layout, mode
        self._slots = slots
        self._free_slots = list(range(slots))
        self._drivers: dict[int, WarmDriver] = {}
        self._processes: dict[int, subprocess.Popen] = {}  # cold job processes by run id
        self._cancelled: set[int] = set()
        self._lock = threading.Condition()
        self._stopping = False
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True, name="dispatch")

    def start(self) -> None:
        if self.mode == "warm":
            # Start the first driver right away so the first run does not wait for the JVM.
            self._drivers[0] = WarmDriver(self.layout, 0)
        self._dispatcher.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for driver in list(self._drivers.values()):
            driver.kill()
        for process in list(self._processes.values()):
            _kill_group(process)
        self.store.mark_in_flight_as_lost()

    def wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def status(self) -> dict:
        """What ``/health`` reports: whether the dispatcher runs, and the runs waiting and
        holding a slot."""
        with self._lock:
            free = len(self._free_slots)
        return {
            "dispatcher": "alive" if self._dispatcher.is_alive() else "dead",
            "queued": self.store.count("QUEUED"),
            "running": self._slots - free,
            "free_slots": free,
        }

    def cancel(self, run_id: int) -> None:
        # Read and mark under the lock the dispatcher holds while it takes a run off the
        # queue: a run is cancelled while QUEUED (it never starts) or once it holds a slot
        # (its run thread stops it), never in between.
        with self._lock:
            run = self.store.get(run_id)
            if run is None:
                return
            if run["life_cycle_state"] == "QUEUED":
                self.store.update(
                    run["run_id"],
                    life_cycle_state="TERMINATED",
                    result_state="CANCELED",
                    state_message="Run cancelled while queued",
                    end_time=now_ms(),
                )
            elif run["life_cycle_state"] in ("PENDING", "RUNNING"):
                self._cancelled.add(run["run_id"])

    def _dispatch(self) -> None:
        """Hand queued runs to free slots until the cluster stops. An error of its own (the
        store unreadable for a moment, no thread to be had) is logged and the loop goes on:
        a dead dispatcher would leave every later run QUEUED behind a healthy-looking server."""
        while True:
            try:
                if not self._dispatch_one():
                    return
            except Exception:
                log.exception("the dispatcher failed; it tries again")
                with self._lock:
                    if self._stopping:
                        return
                    self._lock.wait(timeout=DISPATCH_RETRY_SECONDS)

    def _dispatch_one(self) -> bool:
        """Start the next queued run on a free slot, once there are both; False on stop."""
        with self._lock:
            while not self._stopping and not (
                self._free_slots and self.store.next_queued() is not None
            ):
                self._lock.wait(timeout=0.5)
            if self._stopping:
                return False
            run = self.store.next_queued()
            if run is None:
                return True
            slot = self._free_slots.pop(0)
            claimed = False
            try:
                claimed = self.store.update(
                    run["run_id"],
                    life_cycle_state="PENDING",
                    start_time=now_ms(),
                    state_message="Starting the job on the local cluster",
                )
            finally:
                if not claimed:  # the run ended meanwhile, or the store failed
                    self._free_slots.insert(0, slot)
            if not claimed:
                return True
        try:
            threading.Thread(
                target=self._execute, args=(run, slot), daemon=True, name=f"run-{run['run_id']}"
            ).start()
        except Exception as error:
            try:
                self._internal_error(run["run_id"], f"Local workspace error: {error}", error)
            finally:
                with self._lock:
                    self._free_slots.append(slot)
                    self._lock.notify_all()
            raise
        return True

    def _finish(self, run_id: int, result_state: str, message: str, **extra) -> None:
        if self.store.update(
            run_id,
            life_cycle_state="TERMINATED",
            result_state=result_state,
            state_message=message,
            end_time=now_ms(),
            **extra,
        ):
            log.info("run %s finished: %s %s", run_id, result_state, message)
        else:
            log.info("run %s had already ended; %s not recorded", run_id, result_state)

    def _internal_error(self, run_id: int, message: str, error: BaseException) -> None:
        self.store.update(
            run_id,
            life_cycle_state="INTERNAL_ERROR",
            result_state="FAILED",
            state_message=message,
            end_time=now_ms(),
            error=f"{type(error).__name__}: {error}",
        )

    def _execute(self, run: dict, slot: int) -> None:
        run_id = run["run_id"]
        timeout = run["timeout_seconds"]
        started = time.monotonic()

        def verdict() -> str | None:
            if run_id in self._cancelled:
                return "CANCELED"
            if timeout and time.monotonic() - started > timeout:
                return "TIMEDOUT"
            return None

        setting_up = True
        try:
            # Set-up failures (the run folder not writable, parameters unreadable) end the run
            # as INTERNAL_ERROR and free the slot like any other error, below.
            run_dir = self.layout.workspace_dir / "runs" / str(run_id)
            run_dir.mkdir(parents=True, exist_ok=True)
            log_path = run_dir / "output.log"
            log_path.touch()
            self.store.update(run_id, log_path=str(log_path))
            script = (self.layout.root / run["python_file"]).resolve()
            args = json.loads(run["parameters"])
            setting_up = False
            if self.mode == "warm":
                result = self._run_warm(run_id, slot, script, args, log_path, verdict)
            else:
                result = self._run_cold(run_id, script, args, log_path, run_dir, verdict)
            if result is None:
                outcome = verdict() or "CANCELED"
                message = (
                    f"Run timed out after {timeout} seconds"
                    if outcome == "TIMEDOUT"
                    else "Run cancelled by request"
                )
                self._finish(run_id, outcome, message)
            elif result["ok"]:
                self._finish(run_id, "SUCCESS", "")
            else:
                self._finish(
                    run_id,
                    "FAILED",
                    "Task failed with error: " + result["error"].splitlines()[0],
                    error=result["error"],
                    error_trace=result["error_trace"],
                )
        except DriverDied as died:
            self._internal_error(
                run_id, f"The local cluster's driver died during the run ({died})", died
            )
        except Exception as error:  # the server must survive anything a run does
            if setting_up:
                log.exception("run %s could not be set up", run_id)
                message = f"The run could not be set up: {type(error).__name__}: {error}"
            else:
                log.exception("run %s failed inside the workspace", run_id)
                message = f"Local workspace error: {error}"
            self._internal_error(run_id, message, error)
        finally:
            with self._lock:
                self._cancelled.discard(run_id)
                self._free_slots.append(slot)
                self._lock.notify_all()

    def _run_warm(self, run_id, slot, script, args, log_path, verdict) -> dict | None:
        driver = self._drivers.get(slot)
        if driver is None or not driver.alive():
            driver = self._drivers[slot] = WarmDriver(self.layout, slot)
        try:
            if not driver.ensure_ready(lambda: verdict() is not None):
                driver.kill()
                del self._drivers[slot]
                return None
            if not self.store.update(
                run_id, life_cycle_state="RUNNING", state_message="", running_time=now_ms()
            ):
                return None  # ended meanwhile (the server stopping): nothing to run
            log.info("run %s running %s on warm driver %s", run_id, script.name, slot)
            result = driver.run(script, args, log_path, lambda: verdict() is not None)
        except DriverDied:
            self._drivers.pop(slot, None)
            raise
        if result is None:
            driver.kill()
            self._drivers.pop(slot, None)
        return result

    def _run_cold(self, run_id, script, args, log_path, run_dir, verdict) -> dict | None:
        result_path = run_dir / "result.json"
        env = _process_environment(self.layout)
        with open(run_dir / "process.log", "ab") as process_log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "local.workspace.launcher",
                    str(result_path),
                    str(log_path),
                    str(script),
                    *args,
                ],
                env=env,
                cwd=self.layout.root,
                stdout=process_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._processes[run_id] = process
        try:
            if not self.store.update(
                run_id, life_cycle_state="RUNNING", state_message="", running_time=now_ms()
            ):
                _kill_group(process)  # ended meanwhile (the server stopping): nothing to run
                return None
            log.info("run %s running %s in cold process %s", run_id, script.name, process.pid)
            while process.poll() is None:
                if verdict() is not None:
                    _kill_group(process)
                    return None
                time.sleep(0.2)
        finally:
            self._processes.pop(run_id, None)
        if result_path.exists():
            return json.loads(result_path.read_text())
        raise DriverDied(f"job process exited with code {process.returncode} before finishing")
