"""Owned subprocesses: every command the plugin starts goes through :func:`run_owned`.

Each command runs in its own process group with a timeout; on timeout, on
Ctrl-C or on any exception in the waiting thread, the whole group is killed,
so an agent's children never outlive the trial.  The groups alive at any
moment are announced to :func:`watching` listeners, which save them in the
trial's record: if the process running a trial is killed outright (SIGKILL of
an xdist worker), the controller reaps those groups with :func:`reap`.

A child that leaves the group (``setsid``, a double fork into a new session)
would escape that kill, so the process running commands makes itself a child
subreaper (Linux): such orphans are reparented to it instead of to init, and
after each command :func:`run_owned` kills and reaps the ones that came from
it.  A :class:`~pytest_parallel_explore.isolation.sandbox.Sandbox` goes further: its pid
namespace dies with the command.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import re
import resource
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ..model.limits import NO_LIMITS, Limits
from .limits import CappedLog, Watch
from .sandbox import Prepared, Sandbox

_log = logging.getLogger(__name__)

#: How long a process group gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 3.0
#: How long the output a command left in its pipe may take to reach its log once the command ended.
_DRAIN_SECONDS = 0.5

#: Environment variables of the outer pytest run that must not leak into the
#: commands we start (an inner pytest would think it is an xdist worker).
_PYTEST_RUN_VARIABLES = (
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_CURRENT_TEST",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
)


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def expand(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` in a shell command by the shell-quoted value of ``values[name]``.

    Braces that name no value are left alone, so ``${VAR}`` or awk programs keep working.
    """
    return _PLACEHOLDER.sub(lambda m: shlex.quote(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


@dataclasses.dataclass(frozen=True)
class Finished:
    returncode: int | None
    timed_out: bool
    seconds: float
    stdout: str = ""
    limit: str | None = None  # the resource limit the command hit and was stopped for (``memory 8G``)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without the outer pytest run's variables.

    For command agents and Claude Code, which need their own credentials.
    Scoring and the built-in agent's commands get :func:`.environ.safe_env`,
    an allow-list, instead.
    """
    env = {k: v for k, v in os.environ.items() if k not in _PYTEST_RUN_VARIABLES}
    env.update(extra or {})
    return env


#: A process group as recorded: its id and its leader's start time (to detect a reused pid).
Group = tuple[int, int]

_live: dict[int, Group] = {}
_listeners: list[Callable[[list[Group]], None]] = []


@contextlib.contextmanager
def watching(listener: Callable[[list[Group]], None]) -> Iterator[None]:
    """Call ``listener`` with the live process groups each time one starts or ends."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def live_groups() -> list[Group]:
    """The process groups of this process's commands running now (every thread's)."""
    return sorted(_live.values())


def _announce(pid: int, alive: bool) -> None:
    if alive:
        _live[pid] = (pid, _start_time(pid) or 0)
    else:
        _live.pop(pid, None)
    for listener in list(_listeners):
        listener(sorted(_live.values()))


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def reap(groups: Sequence[Sequence[int]]) -> list[int]:
    """SIGKILL recorded process groups that are still around; return the ones signalled.

    A group is skipped when its leader's pid now belongs to a different
    process (same pid, other start time): that pid was reused, and the group
    is not ours.
    """
    killed = []
    for pgid, started in groups:
        now = _start_time(pgid)
        if now is not None and started and now != started:
            continue
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        killed.append(pgid)
    return killed


#: Run before every command: wait for one line on stdin, then become the command.  The
#: watchers learn of a command's process group (and a trial saves it in its record) before
#: the command does anything, so a worker killed at any moment leaves no command unrecorded.
#: Without the line (the parent died first) the command never runs.
_GATE = ("/bin/sh", "-c", 'read -r _ || exit 125; exec "$@"', "explore-gate")


def run_owned(
    command: str | Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin: str | None = None,
    output: Path | None = None,
    capture: bool = False,
    sandbox: Sandbox | None = None,
    pass_fds: Sequence[int] = (),
    started: Callable[[int], None] | None = None,
) -> Finished:
    """Run ``command`` (a shell string or an argv) in its own process group.

    Output goes to ``output`` (appended, stderr merged), or is captured and
    returned when ``capture`` is set, or is discarded.  Whatever happens, no
    process of the group is left running when this returns or raises, nor any
    process that left the group (see :func:`become_subreaper`).  With
    ``sandbox`` the command runs inside it (raises
    :class:`~pytest_parallel_explore.isolation.sandbox.SandboxUnavailable` without bubblewrap)
    and under its limits: a command that hits one is stopped and
    :attr:`Finished.limit` names it.  ``pass_fds``: file descriptors the
    command inherits (a pipe it reports on).  ``started`` is called with the
    command's process group id once it runs (an agent CLI's output watcher
    stops it with that).
    """
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    limits = sandbox.limits if sandbox is not None else NO_LIMITS
    with contextlib.ExitStack() as stack:
        prepared = (
            stack.enter_context(sandbox.prepare(argv, cwd, env)) if sandbox is not None else Prepared(argv, (), (cwd,))
        )
        return _run(prepared, cwd, env, timeout, stdin, output, capture, limits, tuple(pass_fds), started)


def _run(
    prepared: Prepared,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin: str | None,
    output: Path | None,
    capture: bool,
    limits: Limits,
    pass_fds: tuple[int, ...],
    started_hook: Callable[[int], None] | None = None,
) -> Finished:
    argv = [*_GATE, *prepared.argv]
    log: IO[bytes] | None = output.open("ab") if output is not None else None
    # A pipe (the built-in agent's run_command reads one) is bounded by its reader; a log file by the limit.
    capped = CappedLog(log, limits.output) if log is not None and limits.output and _is_file(log) else None
    stdout: int | IO[bytes] = subprocess.PIPE if capture else (capped.pipe() if capped else log or subprocess.DEVNULL)
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    watch: Watch | None = None
    try:
        try:
            proc = _commands.spawn(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=subprocess.STDOUT if not capture else (log or subprocess.DEVNULL),
                pass_fds=(*prepared.pass_fds, *pass_fds),
            )
        except OSError as exc:  # the executable itself is missing or not runnable
            if log is not None:
                log.write(f"could not start {argv[0]!r}: {exc}\n".encode())
            return Finished(returncode=127, timed_out=False, seconds=0.0)
        finally:
            if capped is not None:
                capped.started()
        _announce(proc.pid, alive=True)
        if limits.file_size is not None:  # before the gate opens: what the command runs inherits it
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limits.file_size, limits.file_size))
        watch = Watch(proc.pid, limits, prepared.written, capped, lambda: _signal_group(proc.pid, signal.SIGKILL))
        if started_hook is not None:
            started_hook(proc.pid)
        try:
            # The first line opens the gate: the command starts only now that its group is announced.
            gate_and_input = b"\n" + (stdin.encode() if stdin is not None else b"")
            out, _ = proc.communicate(gate_and_input, timeout=max(timeout, 0.001))
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return Finished(None, True, time.monotonic() - started, limit=watch.stop())
        except BaseException:
            kill_group(proc)
            raise
        # The leader is gone; children it left in the background go with it.
        _signal_group(proc.pid, signal.SIGKILL)
        _announce(proc.pid, alive=False)
        text = out.decode(errors="replace") if out else ""
        if capped is not None:
            capped.wait(_DRAIN_SECONDS)  # the output the command left in the pipe may go past the limit
        limit = watch.stop() or _file_size_hit(proc.returncode, limits)
        return Finished(proc.returncode, False, time.monotonic() - started, text, limit)
    finally:
        if watch is not None:
            watch.stop()
        if proc is not None:
            if proc.returncode is None:  # interrupted before its wait began (while announcing it, say)
                kill_group(proc)
            _commands.leave(proc.pid)
        if capped is not None:
            capped.wait(KILL_GRACE_SECONDS)  # what escaped the command is gone by now
        if log is not None:
            log.close()


def _is_file(log: IO[bytes]) -> bool:
    return stat.S_ISREG(os.fstat(log.fileno()).st_mode)


def _file_size_hit(returncode: int | None, limits: Limits) -> str | None:
    """A command killed by SIGXFSZ (or a shell reporting that of its last command) wrote past ``file_size``."""
    if limits.file_size is not None and returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        return limits.hit("file_size")
    return None


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after a grace period."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_SECONDS)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    _announce(proc.pid, alive=False)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# Escaped processes -----------------------------------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux); return whether it is one.

    Orphans among its descendants (a child that called ``setsid`` and then
    lost its parent, a double fork) are then reparented to this process
    rather than to init, where :func:`run_owned` finds and kills them.  The
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


def _our_children() -> list[_Orphan]:
    """This process's children that are in another session (all of run_owned's are), from ``/proc``."""
    me, own_session = os.getpid(), os.getsid(0)
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        ppid, group, session, start = int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])
        if ppid == me and session != own_session:
            children.append(_Orphan(int(entry.name), group, session, start))
    return children


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
                start = _start_time(proc.pid) or 0
                self._running[proc.pid] = start
                self._since = start if self._since is None else self._since
            except BaseException:  # Ctrl-C right now: the caller never gets the process to kill
                _signal_group(proc.pid, signal.SIGKILL)
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


_commands = _Commands()
