"""What the agent CLI backends (``claude-code``, ``codex``, ``aider``) share: finding, confining and running the CLI.

A :class:`CliAgent` runs its CLI headless in the worktree with the prompt on
standard input and its machine-readable output appended to the agent log.
While it runs, :func:`run_cli` reads that output as it grows, so a backend
can stop the CLI on what will not get better (Claude Code retries a 401 for
minutes) and report running totals.  Each trial gets a private state folder,
``results/<trial>_<cli>/``, as the CLI's config home (``CLAUDE_CONFIG_DIR``,
``CODEX_HOME``) or for the files it is told to write (aider's history and
analytics log): its session and transcript stay there, to resume or
inspect; the login files a backend names are copied in from the user's own
home for the run and removed after it.  In the sandbox the state folder is
writable (``isolation.confinement`` shows the CLI's install folder), and
:meth:`CliAgent.probe` checks before any trial that the CLI starts there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..isolation.procs import Finished, clean_env, run_owned
from ..isolation.sandbox import Sandbox
from .base import AgentBackend, AgentOutcome, AgentTask, AgentUnavailable
from .pricing import price_problems

#: How often the output of a running CLI is read for events that stop it.
_WATCH_SECONDS = 0.2
#: What of a CLI's output or of a file it wrote is read after the run.
MAX_READ_BYTES = 50 << 20
#: How long ``--version`` may take in the sandbox probe.
_PROBE_SECONDS = 60.0

#: An event a CLI printed (one JSON object a line); a watcher returns why to stop the CLI, or None.
Event = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class CliRun:
    """How a CLI run ended: the process, its events (from the log), and why the backend stopped it, if it did."""

    finished: Finished
    events: list[Event]
    stopped: str | None
    state: Path


def cli_problems(settings: Mapping[str, Any], where: str, cli: str) -> list[str]:
    """Problems with what every CLI backend takes: ``executable`` (default ``cli``) and ``prices``."""
    problems = price_problems(settings["prices"], f"{where}.prices") if "prices" in settings else []
    executable = settings.get("executable", cli)
    if not (isinstance(executable, str) and executable.strip()):
        problems.append(f"{where}.executable: expected the {cli} command's name or path, got {executable!r}")
    return problems


@dataclasses.dataclass(frozen=True)
class CliAgent(AgentBackend):
    """Base of the CLI backends: the executable, its preflight and sandbox probe, and :func:`run_cli`."""

    executable: str = ""

    #: The CLI's name in messages and the state folder's suffix (``claude``).
    cli: ClassVar[str] = ""
    #: How to install it, for the preflight's message.
    install: ClassVar[str] = ""
    #: The variable that points the CLI at its config home (none: its files are named on its command line).
    home_variable: ClassVar[str] = ""
    #: Files of the user's own config home the CLI needs to log in: ``(folder, file name)``.
    login_files: ClassVar[tuple[tuple[str, str], ...]] = ()

    def programs(self) -> tuple[str, ...]:
        return (shlex.quote(self.executable),)

    def preflight(self) -> None:
        if shutil.which(self.executable) is None:
            raise AgentUnavailable(
                f"{self.cli}: {self.executable!r} is not on PATH; install it ({self.install}), "
                "set the agent's executable setting to its path, or choose another backend"
            )

    def probe(self, sandbox: Sandbox) -> None:
        """Raise :class:`AgentUnavailable` unless ``executable --version`` runs in ``sandbox``.

        Run before any trial: a CLI in a folder the sandbox does not show
        (the user's repository, the home folder) fails here, with its path,
        instead of failing every trial.
        """
        found = shutil.which(self.executable) or self.executable
        with tempfile.TemporaryDirectory(prefix="explore-probe-") as folder:
            log = Path(folder) / "probe.log"
            policy = _writable(sandbox, Path(folder))
            finished = run_owned(
                [found, "--version"],
                cwd=Path(folder),
                env=clean_env(),
                timeout=_PROBE_SECONDS,
                output=log,
                sandbox=policy,
            )
            said = log.read_text(errors="replace").strip().splitlines()
        if finished.returncode != 0:
            real = os.path.realpath(found)
            raise AgentUnavailable(
                f"{self.cli}: {found} (really {real}) does not start in the sandbox "
                f"(exit {finished.returncode}: {said[-1] if said else 'no output'}); the sandbox shows "
                "programs installed outside the repository and the home folder (e.g. npm install -g, "
                "or under /opt or /tmp): install it there, or run with sandbox: none"
            )

    def state_folder(self, task: AgentTask) -> Path:
        return task.log_path.with_name(f"{task.trial}_{self.cli}")

    def run_cli(
        self,
        task: AgentTask,
        argv: Sequence[str],
        env: Mapping[str, str],
        watch: Callable[[Event], str | None] = lambda event: None,
        events: Path | None = None,
    ) -> CliRun:
        """Run ``argv`` in the worktree with the prompt on stdin; stop it when ``watch`` gives a reason.

        ``events``: the file in the state folder the CLI writes its JSON
        events to (aider's analytics log), when they are not on its output.
        """
        state = self.state_folder(task)
        state.mkdir(parents=True, exist_ok=True)
        task.log_path.parent.mkdir(parents=True, exist_ok=True)
        with task.log_path.open("ab") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            start = log.tell()
        source = events or task.log_path
        if events is not None:
            start = size_of(events)
        sandbox = _writable(task.sandbox, state) if task.sandbox is not None else None
        watcher = _Watcher(source, start, watch)
        home = {self.home_variable: str(state)} if self.home_variable else {}
        with self._logged_in(state), watcher.running():
            finished = run_owned(
                list(argv),
                cwd=task.worktree,
                env=clean_env({**task.env, **env, **home}),
                timeout=task.timeout,
                stdin=task.prompt,
                output=task.log_path,
                sandbox=sandbox,
                started=watcher.watch_group,
            )
        return CliRun(finished, read_events(source, start), watcher.reason, state)

    @contextlib.contextmanager
    def _logged_in(self, state: Path) -> Iterator[None]:
        """The user's login files copied into ``state`` for the run (private to the user), removed after it."""
        copied = []
        try:
            for folder, name in self.login_files:
                source = Path(folder).expanduser() / name
                if source.is_file() and not (state / name).exists():
                    fd = os.open(state / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    with os.fdopen(fd, "wb") as target:
                        target.write(source.read_bytes())
                    copied.append(state / name)
            yield
        finally:
            for path in copied:
                path.unlink(missing_ok=True)

    def ended_early(self, run: CliRun, task: AgentTask, outcome: AgentOutcome) -> bool:
        """Record how the process ended; True (with ``outcome.failure`` set) when that alone is the failure.

        A limit, the trial's timeout, a missing executable, or a stop of the
        backend's own (:func:`run_cli`'s ``watch``): the output is not judged then.
        """
        finished, stats = run.finished, outcome.stats
        stats.exit_code, stats.seconds = finished.returncode, round(finished.seconds, 3)
        if finished.limit is not None:
            outcome.failure = f"limit: {finished.limit}"
        elif finished.timed_out:
            stats.stop_reason = "timeout"
            outcome.failure, outcome.timed_out = f"agent timed out after {task.timeout:g}s", True
        elif finished.returncode == 127:
            outcome.failure = f"agent command not found: {self.executable}"
        elif run.stopped is not None:
            stats.stop_reason = "stopped"
            outcome.failure = run.stopped
        return outcome.failure is not None


def read_events(log: Path, start: int) -> list[Event]:
    """The JSON objects printed one a line in ``log`` from byte ``start`` (other lines, stderr's, are skipped)."""
    return parse_events(read_bounded(log, start).decode(errors="replace"))


def read_bounded(path: Path, start: int = 0, limit: int = MAX_READ_BYTES) -> bytes:
    """At most ``limit`` bytes of ``path`` from ``start``; nothing for a missing file or a link (hostile input)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as handle:
        handle.seek(start)
        return handle.read(limit)


def size_of(path: Path) -> int:
    """The size of ``path`` itself (a link is not followed); 0 when it is missing."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def parse_events(text: str) -> list[Event]:
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
    return events


def _writable(sandbox: Sandbox, folder: Path) -> Sandbox:
    """``sandbox`` with ``folder`` writable too (the CLI's state folder, in the hidden results folder)."""
    return dataclasses.replace(sandbox, writable=(*sandbox.writable, folder))


class _Watcher:
    """Reads a CLI's output as it is appended to the log; stops the CLI's group when ``watch`` says why."""

    def __init__(self, log: Path, start: int, watch: Callable[[Event], str | None]) -> None:
        self.log, self.offset, self.watch = log, start, watch
        self.reason: str | None = None
        self.group: int | None = None
        self._done = threading.Event()

    def watch_group(self, group: int) -> None:
        self.group = group

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self._loop, daemon=True, name="explore-cli-watch")
        thread.start()
        try:
            yield
        finally:
            self._done.set()
            thread.join()

    def _loop(self) -> None:
        partial = b""
        while not self._done.wait(_WATCH_SECONDS) and self.reason is None:
            data = read_bounded(self.log, self.offset)
            self.offset += len(data)
            *lines, partial = (partial + data).split(b"\n")
            for event in parse_events(b"\n".join(lines).decode(errors="replace")):
                self.reason = self.watch(event)
                if self.reason is not None and self.group is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(self.group, signal.SIGTERM)
                    break
