"""Owned subprocesses: every command the plugin starts goes through :func:`run_owned`.

Each command runs in its own process group with a timeout; on timeout, on
Ctrl-C or on any exception in the waiting thread, the whole group is killed,
so an agent's children never outlive the trial.  The groups alive at any
moment are announced to :func:`watching` listeners, which save them in the
trial's record: if the process running a trial is killed outright (SIGKILL of
an xdist worker), the controller reaps those groups with :func:`reap`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

#: How long a process group gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 3.0

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


def run_owned(
    command: str | Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin: str | None = None,
    output: Path | None = None,
    capture: bool = False,
) -> Finished:
    """Run ``command`` (a shell string or an argv) in its own process group.

    Output goes to ``output`` (appended, stderr merged), or is captured and
    returned when ``capture`` is set, or is discarded.  Whatever happens, no
    process of the group is left running when this returns or raises.
    """
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    log: IO[bytes] | None = output.open("ab") if output is not None else None
    stdout: int | IO[bytes] = subprocess.PIPE if capture else (log or subprocess.DEVNULL)
    started = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT if not capture else (log or subprocess.DEVNULL),
                start_new_session=True,
            )
        except OSError as exc:  # the executable itself is missing or not runnable
            if log is not None:
                log.write(f"could not start {argv[0]!r}: {exc}\n".encode())
            return Finished(returncode=127, timed_out=False, seconds=0.0)
        _announce(proc.pid, alive=True)
        try:
            out, _ = proc.communicate(stdin.encode() if stdin is not None else None, timeout=max(timeout, 0.001))
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return Finished(None, True, time.monotonic() - started)
        except BaseException:
            kill_group(proc)
            raise
        # The leader is gone; children it left in the background go with it.
        _signal_group(proc.pid, signal.SIGKILL)
        _announce(proc.pid, alive=False)
        text = out.decode(errors="replace") if out else ""
        return Finished(proc.returncode, False, time.monotonic() - started, text)
    finally:
        if log is not None:
            log.close()


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
