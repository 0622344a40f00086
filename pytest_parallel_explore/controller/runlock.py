"""One run at a time per experiment: a lock file under the experiment directory.

The lock is an ``fcntl`` lock, so the kernel releases it when its holder dies
however it dies; the pid written in the file names the holder for the error
message, and a pid left by a dead holder is reported as a stale lock taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO


class ExperimentBusy(Exception):
    """Another live process is running this experiment."""


class ExperimentLock:
    """Held by the controller for the whole run; released on close or process exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self.stale_pid: int | None = None  # the dead holder whose lock was taken over

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ExperimentBusy(
                f"another pytest run (pid {holder}) is running this experiment; wait for it to finish, "
                f"or stop it (lock: {self.path})"
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        if previous.isdigit() and int(previous) != os.getpid():
            self.stale_pid = int(previous)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            self._handle.seek(0)
            self._handle.truncate()
        self._handle.close()
        self._handle = None
