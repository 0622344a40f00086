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
after each command :mod:`.orphans` kills and reaps the ones that came from
it.  A :class:`~pytest_parallel_explore.isolation.sandbox.Sandbox` goes further: its pid
namespace dies with the command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import resource
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from ..model.limits import NO_LIMITS, Limits
from .limits import CappedLog, Watch
from .orphans import commands, signal_group, start_time
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
        _live[pid] = (pid, start_time(pid) or 0)
    else:
        _live.pop(pid, None)
    for listener in list(_listeners):
        listener(sorted(_live.values()))


def reap(groups: Sequence[Sequence[int]]) -> list[int]:
    """SIGKILL recorded process groups that are still around; return the ones signalled.

    A group is skipped when its leader's pid now belongs to a different
    process (same pid, other start time): that pid was reused, and the group
    is not ours.
    """
    killed = []
    for pgid, started in groups:
        now = start_time(pgid)
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
    process that left the group (see :func:`.orphans.become_subreaper`).  With
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
            proc = commands.spawn(
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
        watch = Watch(proc.pid, limits, prepared.written, capped, lambda: signal_group(proc.pid, signal.SIGKILL))
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
        signal_group(proc.pid, signal.SIGKILL)
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
            commands.leave(proc.pid)
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
    signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_SECONDS)
    signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    _announce(proc.pid, alive=False)
