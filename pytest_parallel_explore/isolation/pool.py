"""A pool of slots shared by processes: at most ``size`` holders at once, granted longest waiting first.

Agents and test suites are limited apart: agents wait on the network, so a
run has as many as ``max_concurrent`` says (its xdist workers), while suites
burn CPU and get one slot each from a pool the size of ``score.max_concurrent``.
Every xdist worker of the run and the controller's background baseline ask
the same pool, so it lives in files: a folder holding one entry per process
that waits or holds.

An entry is a named pipe ``w-<ticket>-<pid>`` (waiting) or ``h-<ticket>-<pid>``
(holding), ``flock``-ed by its owner for as long as it lives, so the kernel
says who is alive: an entry whose lock can be taken belonged to a process that
died, and is removed by whoever finds it.  Tickets grow, so waiters are
served in the order they came (``flock`` itself wakes waiters in no order).
Every look at the folder, and every change, happens under ``mutex``.

A waiter sleeps on its own pipe; whoever frees a slot writes a byte to the
pipes of the waiters now first in line.  The byte stays in the pipe if the
waiter is not yet asleep, so no wake-up is lost; a waiter also looks again
every :data:`RECHECK` seconds, for the slot of a holder killed without
warning (which wakes nobody).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import select
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: Seconds between a waiter's own looks at the pool, when nobody wakes it (a holder was killed).
RECHECK = 1.0


@dataclasses.dataclass(frozen=True)
class Grant:
    """When a slot was asked for and when it was had (``time.time()``)."""

    asked: float
    granted: float

    @property
    def waited(self) -> float:
        return self.granted - self.asked


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str  # w-<ticket>-<pid> or h-<ticket>-<pid>

    @property
    def holding(self) -> bool:
        return self.name.startswith("h-")

    @property
    def ticket(self) -> int:
        return int(self.name.split("-")[1])

    @staticmethod
    def parse(name: str) -> _Entry | None:
        parts = name.split("-")
        if len(parts) != 3 or parts[0] not in ("w", "h") or not parts[1].isdigit():
            return None
        return _Entry(name)


class SlotPool:
    """``size`` slots shared by every process that opens a pool on ``folder``."""

    def __init__(self, folder: Path, size: int) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one slot, got {size}")
        self.folder = folder
        self.size = size

    @contextlib.contextmanager
    def slot(self, waiting: Callable[[float], None] | None = None) -> Iterator[Grant]:
        """Hold one slot for the ``with`` block; ``waiting(since)`` is called once if it is not free at once."""
        asked = time.time()
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._mutex():
            entry, fd = self._enqueue()
        try:
            told = False
            while True:
                with self._mutex():
                    if self._admits(entry):
                        holding = _Entry("h" + entry.name[1:])
                        os.rename(self.folder / entry.name, self.folder / holding.name)
                        entry = holding
                        break
                if not told and waiting is not None:
                    waiting(asked)
                    told = True
                select.select([fd], [], [], RECHECK)
                _drain(fd)
            yield Grant(asked, time.time())
        finally:
            with self._mutex():
                (self.folder / entry.name).unlink(missing_ok=True)
                os.close(fd)  # lets go of the entry's lock
                self._wake()

    # -- under the mutex ----------------------------------------------------

    @contextlib.contextmanager
    def _mutex(self) -> Iterator[None]:
        fd = os.open(self.folder / "mutex", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _enqueue(self) -> tuple[_Entry, int]:
        """A new waiting entry behind every other, locked by this process: its pipe's descriptor."""
        ticket = max((e.ticket for e in self._entries()), default=0) + 1
        entry = _Entry(f"w-{ticket:012d}-{os.getpid()}")
        path = self.folder / entry.name
        os.mkfifo(path, 0o600)
        # Read and write ends both ours: no writer ever closing, so select() wakes only for a byte.
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return entry, fd

    def _entries(self) -> list[_Entry]:
        """The live entries, oldest first; those of dead processes are removed on the way."""
        found = []
        for name in os.listdir(self.folder):
            entry = _Entry.parse(name)
            if entry is not None and self._alive(entry):
                found.append(entry)
        return sorted(found, key=lambda e: e.ticket)

    def _alive(self, entry: _Entry) -> bool:
        path = self.folder / entry.name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)  # nobody holds it: its process died
        return False

    def _admits(self, entry: _Entry) -> bool:
        """Whether ``entry`` may hold a slot now: the holders and the waiters ahead of it leave one free."""
        ahead = [e for e in self._entries() if e.holding or e.ticket < entry.ticket]
        return len(ahead) < self.size

    def _wake(self) -> None:
        """Tell the waiters first in line that a slot may be theirs."""
        entries = self._entries()
        free = self.size - sum(e.holding for e in entries)
        for entry in [e for e in entries if not e.holding][: max(0, free)]:
            try:
                fd = os.open(self.folder / entry.name, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:  # gone, or its owner no longer reads (it looks again by itself)
                continue
            try:
                os.write(fd, b".")
            except OSError as exc:
                if exc.errno != errno.EAGAIN:  # a full pipe is a waiter already woken
                    raise
            finally:
                os.close(fd)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 512):
            pass
