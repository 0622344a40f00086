"""Processes that escape a command's group, and the sweep that kills them once it ends.

A child that leaves its group (``setsid``, a double fork into a new session)
would escape :func:`~pytest_parallel_explore.isolation.procs.run_owned`'s kill
of the group, so the process running commands makes itself a child subreaper
(Linux): such orphans are reparented to it instead of to init, and
:data:`commands`, through which every command is started, kills and reaps the
ones that came from a command once it has ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to a process group; one that is gone already (or not ours to signal) is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def keep_nice(pid: int) -> None:
    """Give the session that ``pid`` leads this thread's nice value (Linux autogroups).

    Where the kernel groups processes by session (``sched_autogroup``, on by
    default on many desktops and on this project's CI), a nice value weighs
    only against the processes of its own session, and every command starts a
    session of its own: without this, ``nice pytest --explore …`` would run
    every agent and suite at full priority.
    """
    nice = os.getpriority(os.PRIO_PROCESS, 0)  # this thread's, on Linux
    if nice > 0:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")


_PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux); return whether it is one.

    Orphans among its descendants (a child that called ``setsid`` and then
    lost its parent, a double fork) are then reparented to this process
    rather than to init, where :data:`commands` finds and kills them.  The
    setting is per process, not inherited, and lasts until the process exits.
    Elsewhere than on Linux this does nothing and returns False: processes
    that leave their group can outlive a command there.
    """
    global _subreaper
    if not _subreaper and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return _subreaper


def _forget_subreaper() -> None:
    global _subreaper
    _subreaper = False  # a forked child is not a subreaper, whatever its parent was


os.register_at_fork(after_in_child=_forget_subreaper)


@dataclasses.dataclass(frozen=True)
class _Orphan:
    pid: int
    group: int
    session: int
    start: int


#: Each thread's list of the children it started (or inherited as a subreaper).
_CHILDREN = "children"


def _our_children() -> list[_Orphan]:
    """This process's children that are in another session (all of run_owned's are), from ``/proc``."""
    me, own_session = os.getpid(), os.getsid(0)
    children = []
    for pid in child_pids() if children_listed() else all_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        ppid, group, session, start = int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])
        if ppid == me and session != own_session:
            children.append(_Orphan(int(pid), group, session, start))
    return children


def children_listed() -> bool:
    """Whether the kernel keeps each thread's list of its children (``CONFIG_PROC_CHILDREN``)."""
    return os.path.exists(f"/proc/self/task/{os.getpid()}/{_CHILDREN}")


def child_pids(pid: int | None = None) -> list[int]:
    """The pids of ``pid``'s children (this process's when None), from its threads' lists (see :func:`children_listed`).

    Reading those lists spares reading every process's ``stat`` to find who
    is whose: with 500 processes on the machine, that took 24 ms (0.1 ms from
    the lists), and every command ends with a sweep and is watched by polls
    of its processes.  A process that is gone has none.
    """
    task = f"/proc/{'self' if pid is None else pid}/task"
    try:
        threads = os.listdir(task)
    except OSError:
        return []
    pids: list[int] = []
    for thread in threads:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            pids += map(int, Path(f"{task}/{thread}/{_CHILDREN}").read_bytes().split())
    return pids


def all_pids() -> list[int]:
    """Every process's pid, from ``/proc``."""
    return [int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit()]


class _Commands:
    """The run_owned commands running in this process, and the sweep of what escaped them.

    After a command, our children in its session or process group are its
    orphans, killed at once.  An orphan that made a session of its own cannot
    be traced to a command by its ids, so by its start time: it is killed if
    it started after the first command since this process last ran none (a
    child this process started earlier is not ours to kill) and before every
    command still running (which it could belong to; if it does not, the last
    of those kills it when it ends).  Killing only our own children is free of
    pid-reuse races (a child's pid is ours until we reap it); a killed
    orphan's children become ours in turn, so the sweep repeats until none is
    left.
    """

    #: How long a sweep may take before giving up on, say, a fork bomb.
    SWEEP_SECONDS = 10.0

    def __init__(self) -> None:
        # Held while starting a command and while sweeping, so that a sweep
        # never takes a command just started for an orphan.
        self._lock = threading.Lock()
        self._running: dict[int, int] = {}  # leader pid -> its start time (clock ticks since boot)
        self._since: int | None = None  # start time of the first command since none was running

    def spawn(self, argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(argv, **popen)`` in a new session, registered as a running command."""
        become_subreaper()
        with self._lock:
            proc = subprocess.Popen(argv, start_new_session=True, **popen)
            try:
                keep_nice(proc.pid)
                start = start_time(proc.pid) or 0
                self._running[proc.pid] = start
                self._since = start if self._since is None else self._since
            except BaseException:  # Ctrl-C right now: the caller never gets the process to kill
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        return proc

    def leave(self, leader: int) -> None:
        """Kill and reap what escaped the command led by ``leader``, which has ended."""
        with self._lock:
            self._running.pop(leader, None)
            until = min(self._running.values(), default=None)
            self._sweep(leader, self._since or 0, until)
            if not self._running:
                self._since = None

    def _sweep(self, leader: int, since: int, until: int | None) -> None:
        if not _subreaper:
            return
        deadline = time.monotonic() + self.SWEEP_SECONDS
        while True:
            orphans = [
                child.pid
                for child in _our_children()
                if leader in (child.session, child.group)
                or (since <= child.start and (until is None or child.start < until))
            ]
            if not orphans:
                return
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for pid in orphans:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            if time.monotonic() > deadline:
                _log.warning("processes that escaped a command keep appearing; gave up killing them")
                return


#: The one registry of this process: every command starts and ends through it.
commands = _Commands()
