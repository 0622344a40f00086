"""Helpers for tests that start real processes and check that none is left."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

#: A shell script for ``run_owned``: starts two processes meant to outlive it, writes
#: their pids to ``{dir}/escaped.pid`` and ``{dir}/stubborn.pid``, then does ``{then}``.
#: The escaped one is a ``setsid`` + double-forked sleeper: it leaves the command's
#: session and group, and its parent exits at once.  The stubborn one ignores SIGTERM.
ESCAPING_COMMAND = """\
escaped=$(setsid sh -c 'sleep 300 >/dev/null 2>&1 & echo $!')
sh -c 'trap "" TERM; exec sleep 300' >/dev/null 2>&1 &
echo $! > {dir}/stubborn.pid
echo $escaped > {dir}/escaped.pid
{then}
"""


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait until ``condition()`` holds (checked every 20 ms), or fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def read_pid(path: Path) -> int | None:
    """The pid in ``path`` once it is completely written (a line), else None."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


def wait_pid(path: Path) -> int:
    wait_for(lambda: read_pid(path) is not None, f"a pid in {path}")
    pid = read_pid(path)
    assert pid is not None
    return pid


def exists(pid: int) -> bool:
    """Whether ``pid`` names a process, zombies included (``kill(pid, 0)``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def next_tick() -> None:
    """Wait for the clock tick that ``/proc/<pid>/stat`` start times count in to pass.

    Processes started after this have a later start time than those started
    before, which is how run_owned tells an escapee's command.
    """

    def ticks() -> int:
        return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))

    now = ticks()
    wait_for(lambda: ticks() > now, "the next clock tick")


def unblock(fifo: Path) -> bool:
    """Let a command blocked in ``read _ < fifo`` go on; False if nobody is reading it."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no reader
            return False
        raise
    os.write(fd, b"go\n")
    os.close(fd)
    return True


def release(fifo: Path, timeout: float = 30) -> None:
    """Let the command blocked in ``read _ < fifo`` go on, waiting for it to get there."""
    wait_for(lambda: unblock(fifo), f"a reader on {fifo}", timeout)


def blocking_on(directory: Path, name: str = "go") -> tuple[Path, str]:
    """A FIFO in ``directory`` and the shell line that waits on it."""
    fifo = directory / name
    os.mkfifo(fifo)
    return fifo, f"read _ < {fifo}"
