"""A bubblewrap sandbox for the commands of an agent or a scoring run.

A :class:`Sandbox` is a policy: which paths the command may write, which it
must not see, which stay read-only inside writable ones, and whether it has a
network.  :meth:`Sandbox.wrap` turns an argv into a ``bwrap`` argv that
enforces it; :func:`~pytest_parallel_explore.isolation.procs.run_owned` applies it when
given ``sandbox=``.

Inside, the whole filesystem is read-only, ``/dev`` and ``/tmp`` are fresh
and private, and the command runs in its own pid namespace: ``/proc`` shows
only the sandbox's processes (no parent process, no parent environment), and
when the command ends or is killed the namespace goes with it, so nothing it
started (``setsid``, double forks, SIGTERM-ignoring children) survives.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path


class SandboxUnavailable(RuntimeError):
    """The sandbox was asked for but bubblewrap is not installed."""


def find_bwrap() -> str | None:
    """The path of the ``bwrap`` executable on ``PATH``, or None when bubblewrap is not installed."""
    return shutil.which("bwrap")


# Mounts are emitted parents first; between mounts of the same path, in this order
# (a later mount goes on top of an earlier one).
_HIDE, _WRITE, _READ_ONLY = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """What a sandboxed command may see and change.

    ``writable``: paths bound read-write (a worktree, a scoring checkout).
    ``hidden``: paths replaced by an empty directory (a file by an empty file);
    a writable or read-only path inside a hidden one is still there.
    ``readonly``: paths bound read-only again on top of a writable parent
    (a worktree's ``.git`` file, say).
    ``extra_writable``: users' additions to ``writable`` (an agent CLI's config
    directory such as ``~/.claude``); ``~`` is expanded.
    ``network``: without it the command gets its own network namespace with
    only a loopback interface.

    Paths that do not exist are skipped.  Paths are resolved (symlinks
    followed) when the command is wrapped, and mounts are applied parents
    first, so nesting works whichever way round it is.
    """

    writable: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    readonly: tuple[Path, ...] = ()
    extra_writable: tuple[Path, ...] = ()
    network: bool = True

    def wrap(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """The ``bwrap`` command line that runs ``argv`` in ``cwd`` inside this sandbox.

        Raises :class:`SandboxUnavailable` when bubblewrap is not installed.
        """
        bwrap = find_bwrap()
        if bwrap is None:
            raise SandboxUnavailable("the sandbox needs bubblewrap: install the 'bubblewrap' package (bwrap)")
        args = [
            bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
            # Own pid namespace: /proc shows no outside process, and its init
            # going away SIGKILLs everything inside, setsid'd or not.
            "--unshare-pid",
            # SIGKILL the sandbox when bwrap dies (our process-group kill reaches bwrap).
            "--die-with-parent",
            # No controlling terminal to push keystrokes into (TIOCSTI); run_owned
            # never hands out a terminal anyway, so this costs nothing.
            "--new-session",
            # bwrap started by root keeps root's capabilities inside, enough to
            # unmount a hidden path or remount / read-write: drop them all.
            "--cap-drop", "ALL",
        ]  # fmt: skip
        if not self.network:
            args.append("--unshare-net")  # bwrap brings up loopback in the new namespace
        for path, kind in self._mounts():
            target = str(path)
            if kind == _HIDE:
                args += ["--tmpfs", target] if path.is_dir() else ["--ro-bind", os.devnull, target]
            elif kind == _WRITE:
                args += ["--bind-try", target, target]
            else:
                args += ["--ro-bind-try", target, target]
        args += ["--chdir", str(cwd), "--", *argv]
        return args

    def _mounts(self) -> Iterator[tuple[Path, int]]:
        """Existing paths with their kind, parents before children, hidden before writable before read-only."""
        wanted = [
            *((path, _HIDE) for path in self.hidden),
            *((path, _WRITE) for path in self.writable),
            *((path.expanduser(), _WRITE) for path in self.extra_writable),
            *((path, _READ_ONLY) for path in self.readonly),
        ]
        existing = {(path.resolve(), kind) for path, kind in wanted if path.exists()}
        yield from sorted(existing, key=lambda item: (len(item[0].parts), item[1], str(item[0])))


def wanted(mode: str) -> bool:
    """Whether a ``sandbox:`` mode (``auto``, ``bwrap``, ``none``) means running in bubblewrap here."""
    return mode == "bwrap" or (mode == "auto" and find_bwrap() is not None)
