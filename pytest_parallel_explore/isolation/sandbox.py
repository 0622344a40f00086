"""A bubblewrap sandbox for the commands of an agent or a scoring run: an allow-list of what they see.

A :class:`Sandbox` is a policy: which paths the command may write, which it
may read, which of those stay hidden, whether it has a network, and the
resource limits of what it runs.  :meth:`Sandbox.prepare` turns an argv into a
``bwrap`` argv that enforces it; :func:`~pytest_parallel_explore.isolation.procs.run_owned`
applies it when given ``sandbox=``.

Inside, the command sees the system's software read-only (:data:`SYSTEM`:
``/usr``, ``/bin``, ``/lib*``, ``/etc`` less its secrets, ``/opt``), what
its policy lists, and nothing else: no ``/run`` (the host's sockets, the
user's runtime folder), no ``/var``, no home folder, no other trial, no user
repository.  ``$HOME``, ``/tmp`` and ``$TMPDIR`` are empty folders of its
own, on disk (so the ``disk`` limit counts them) and removed afterwards;
``/dev`` and ``/proc`` are fresh, and the command runs in its own pid
namespace: ``/proc`` shows only the sandbox's processes (no parent process, no
parent environment), and when the command ends or is killed the namespace
goes with it, so nothing it started (``setsid``, double forks,
SIGTERM-ignoring children) survives.  With the network, a seccomp filter
keeps it from making unix sockets (see :mod:`.seccomp`).

``isolated=False`` is the policy of a command that runs without bubblewrap
(``sandbox: none``, or ``auto`` without it): only its limits apply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from ..model.limits import Limits
from .seccomp import unix_socket_filter

_log = logging.getLogger(__name__)


class SandboxUnavailable(RuntimeError):
    """The sandbox was asked for but bubblewrap is not installed."""


def find_bwrap() -> str | None:
    """The path of the ``bwrap`` executable on ``PATH``, or None when bubblewrap is not installed."""
    return shutil.which("bwrap")


#: The system's software, read-only in every sandbox (those that exist; a symlink stays a symlink).
SYSTEM = tuple(Path(p) for p in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"))
_SYSTEM_NAMES = tuple(str(p) for p in SYSTEM)


def in_system(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (absolute, normalised) is one of :data:`SYSTEM` or inside one: shown in every sandbox anyway."""
    text = os.fspath(path)
    return any(text == s or text.startswith(s + "/") for s in _SYSTEM_NAMES)


#: What of ``/etc`` is secret-ish: password hashes, sudo rules, the host's ssh keys, TLS private keys.
ETC_SECRETS = tuple(
    Path(p)
    for p in (
        "/etc/shadow",
        "/etc/shadow-",
        "/etc/gshadow",
        "/etc/gshadow-",
        "/etc/sudoers",
        "/etc/sudoers.d",
        "/etc/ssh",
        "/etc/ssl/private",
    )
)

# Mounts are emitted parents first; between mounts of the same path, in this order
# (a later mount goes on top of an earlier one).
_LINK, _PRIVATE, _HIDE, _WRITE, _READ_ONLY = 0, 1, 2, 3, 4


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A command ready to start: its argv, the file descriptors it must inherit, the folders it writes."""

    argv: list[str]
    pass_fds: tuple[int, ...]
    written: tuple[Path, ...]


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """What a sandboxed command may see and change, and what it may use.

    ``writable``: paths bound read-write (a trial's folder, a scoring checkout).
    ``readonly``: paths bound read-only, besides :data:`SYSTEM` (the
    interpreter, a prompt file, an agent CLI's folder), or again read-only on
    top of a writable parent (a worktree's ``.git`` file, say).
    ``hidden``: paths inside those replaced by an empty directory (a file by
    an empty file); a writable or read-only path inside a hidden one is still
    there.
    ``network``: without it the command gets its own network namespace with
    only a loopback interface; with it, no unix sockets.
    ``isolated``: False runs the command without bubblewrap, under its
    ``limits`` only.

    Paths that do not exist are skipped.  Paths are resolved (symlinks
    followed) when the command is prepared, and mounts are applied parents
    first, so nesting works whichever way round it is.
    """

    writable: tuple[Path, ...] = ()
    readonly: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    network: bool = True
    isolated: bool = True
    limits: Limits = dataclasses.field(default_factory=Limits)

    @contextlib.contextmanager
    def prepare(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Iterator[Prepared]:
        """The command that runs ``argv`` in ``cwd`` inside this sandbox, valid until the context ends.

        ``env`` gives the paths of ``$HOME`` and ``$TMPDIR`` inside.  Raises
        :class:`SandboxUnavailable` when bubblewrap is not installed.
        """
        if not self.isolated:
            yield Prepared(list(argv), (), (cwd,))
            return
        bwrap = find_bwrap()
        if bwrap is None:
            raise SandboxUnavailable("the sandbox needs bubblewrap: install the 'bubblewrap' package (bwrap)")
        private = Path(tempfile.mkdtemp(prefix="explore-sandbox-"))
        try:
            with self._seccomp() as fds:
                args = [bwrap, *self._namespaces(fds), *self._mount_args(private, env)]
                yield Prepared([*args, "--chdir", str(cwd), "--", *argv], fds, (*self.writable, private))
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def _namespaces(self, fds: tuple[int, ...]) -> list[str]:
        args = [
            "--dev", "/dev",
            "--proc", "/proc",
            # The host's sysctls read-only. bwrap covers them only when its own access check finds them
            # writable, which as root (no user namespace) it does not, so they stayed writable: a
            # core_pattern of "|prog" has the kernel run prog as root, outside every namespace.
            "--ro-bind", "/proc/sys", "/proc/sys",
            "--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger",
            # Own pid namespace: /proc shows no outside process, and its init
            # going away SIGKILLs everything inside, setsid'd or not.
            "--unshare-pid",
            # Own System V IPC: no shared memory segment or message queue of the host's.
            "--unshare-ipc",
            # SIGKILL the sandbox when bwrap dies (our process-group kill reaches bwrap).
            "--die-with-parent",
            # No --new-session: run_owned starts every command in a session of its own, without a
            # controlling terminal or any terminal's descriptor, so there is none to push keystrokes
            # into (TIOCSTI); and a second session would drop the nice value its first was given.
            # bwrap started by root keeps root's capabilities inside, enough to
            # unmount a hidden path or remount / read-write: drop them all.
            "--cap-drop", "ALL",
        ]  # fmt: skip
        if not self.network:
            args.append("--unshare-net")  # bwrap brings up loopback in the new namespace
        for fd in fds:
            args += ["--seccomp", str(fd)]
        return args

    @contextlib.contextmanager
    def _seccomp(self) -> Iterator[tuple[int, ...]]:
        """The unix-socket filter in a memory file for bwrap to read, when the command shares the host's network."""
        program = unix_socket_filter() if self.network else None
        if program is None:
            if self.network:
                _log.warning("no seccomp filter on this machine: sandboxed commands can reach abstract unix sockets")
            yield ()
            return
        fd = os.memfd_create("explore-seccomp")  # no close-on-exec flag: bwrap inherits it
        try:
            os.write(fd, program)
            os.lseek(fd, 0, os.SEEK_SET)
            yield (fd,)
        finally:
            os.close(fd)

    def _mount_args(self, private: Path, env: Mapping[str, str]) -> list[str]:
        args = []
        for target, kind, source in self._mounts(private, env):
            if kind == _LINK:  # /bin -> usr/bin on a merged /usr
                args += ["--symlink", os.readlink(target), str(target)]
            elif kind == _PRIVATE:
                args += ["--bind", str(source), str(target)]
            elif kind == _HIDE:
                args += ["--tmpfs", str(target)] if target.is_dir() else ["--ro-bind", os.devnull, str(target)]
            elif kind == _WRITE:
                args += ["--bind-try", str(target), str(target)]
            else:
                args += ["--ro-bind-try", str(target), str(target)]
        return args

    def _mounts(self, private: Path, env: Mapping[str, str]) -> list[tuple[Path, int, Path]]:
        """(target, kind, source) of every mount, parents before children, in kind order at the same path."""
        mounts: set[tuple[Path, int, Path]] = set()
        for name, where in {"home": env.get("HOME"), "tmp": "/tmp", "tmpdir": env.get("TMPDIR")}.items():
            target = Path(os.path.normpath(where)) if where and os.path.isabs(where) else None
            if target is not None and not any(target == s or target in s.parents for s in SYSTEM):
                (private / name).mkdir()
                mounts.add((target, _PRIVATE, private / name))
        wanted = [
            *((path, _HIDE) for path in self.hidden),
            *((path, _WRITE) for path in self.writable),
            *((path, _READ_ONLY) for path in self.readonly),
        ]
        mounts.update(_existing(wanted))
        mounts.update(_system_mounts())
        return sorted(mounts, key=lambda m: (len(m[0].parts), m[1], str(m[0])))


@functools.lru_cache(maxsize=1)
def _system_mounts() -> frozenset[tuple[Path, int, Path]]:
    """The mounts of every sandbox: the system read-only, its secrets hidden (looked up once a process)."""
    return frozenset(
        _existing(
            [*((path, _HIDE) for path in ETC_SECRETS), *((path, _READ_ONLY) for path in (*SYSTEM, *_outside_links()))]
        )
    )


def _existing(wanted: Iterable[tuple[Path, int]]) -> Iterator[tuple[Path, int, Path]]:
    for path, kind in wanted:
        if path in SYSTEM and path.is_symlink():
            yield path, _LINK, path
        elif path.exists():
            yield path.resolve(), kind, path.resolve()


def _outside_links() -> list[Path]:
    """What the resolver's configuration links to outside ``/etc`` (``/run/systemd/resolve/...``): DNS must work."""
    target = Path("/etc/resolv.conf").resolve()
    return [target] if not target.is_relative_to("/etc") else []


def wanted(mode: str) -> bool:
    """Whether a ``sandbox:`` mode (``auto``, ``bwrap``, ``none``) means running in bubblewrap here."""
    return mode == "bwrap" or (mode == "auto" and find_bwrap() is not None)
