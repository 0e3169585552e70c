"""One server per state folder.

A second ``python -m local.workspace serve`` on the state folder of a live one would open the
same run store and, at its start, mark the live server's runs in flight as lost
(INTERNAL_ERROR) while they go on running. So ``serve`` takes an exclusive ``flock`` on
``<state>/workspace/server.lock`` before it opens the store or touches anything else, and holds
it for the life of the process; the kernel releases it when the process ends, however it ends
(SIGKILL included), so no stale lock survives a crash. The holder's pid is written in the file
for the refusal message. Job processes never inherit the descriptor (close-on-exec).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "server.lock"


class StateFolderBusy(RuntimeError):
    """Another live workspace server holds the state folder."""


class StateFolderLock:
    def __init__(self, fd: int, path: Path):
        self._fd: int | None = fd
        self.path = path

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateFolderLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def lock_state_folder(state: Path, workspace_dir: Path) -> StateFolderLock:
    """Lock the state folder ``state`` (the lock file lives in its ``workspace_dir``), or
    raise :class:`StateFolderBusy` naming the folder and the pid of the server holding it."""
    workspace_dir.mkdir(parents=True, exist_ok=True)
    path = workspace_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = 0
        with contextlib.suppress(OSError, ValueError):
            holder = int(os.pread(fd, 32, 0).decode().strip() or "0")
        os.close(fd)
        pid = f" (pid {holder})" if holder else ""
        raise StateFolderBusy(
            f"another local workspace{pid} is serving the state folder {state}; stop it "
            "first, or give this one its own --state-dir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateFolderLock(fd, path)
