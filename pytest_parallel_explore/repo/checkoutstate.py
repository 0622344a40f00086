"""The main checkout's files as they were when the run started, and putting them back.

Without a sandbox an agent runs with the user's own access: it can write
the main checkout by absolute path.  So when the run starts the checkout is
kept in the experiment's private store (see ``store``): every tracked and
untracked file, and the ignored ones up to :data:`FILE_CAP` each and
:data:`TOTAL_CAP` in all (beyond that, a file's size, mtime and ctime only: a
change to it is reported, not undone).  After each trial and at the end of
the run, what differs is put back byte for byte and named.  A file the user
changed meanwhile cannot be told from an agent's change: whatever is
replaced or removed is first moved aside under ``kept/``, so nothing is lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import blobs, gitops
from .gitcmd import Git
from .store import KeptFiles, keep_files
from .treefiles import Stat, stat_of

#: Ignored files larger than this are watched by their size, mtime and ctime only.
FILE_CAP = 10 * 1024 * 1024
#: At most this much of ignored files is kept; the rest is watched by size, mtime and ctime only.
TOTAL_CAP = 100 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class CheckoutState:
    """The main checkout at the start of the run: what was kept, and what is watched by stat only."""

    root: str
    kept: KeptFiles
    stats: Mapping[str, Stat]  # each kept file's lstat, so an untouched file is not read again
    watched: Mapping[str, tuple[int, int, int]]  # ignored files too large to keep: (size, mtime_ns, ctime_ns)
    folders: Mapping[str, int]  # every folder, and its permission bits
    excluded: tuple[str, ...]  # not looked at: the plugin's folder, the run's own output and caches

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "kept": self.kept.to_json(),
            "stats": {p: list(s) for p, s in self.stats.items()},
            "watched": {p: list(s) for p, s in self.watched.items()},
            "folders": dict(self.folders),
            "excluded": list(self.excluded),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckoutState:
        return cls(
            root=str(data["root"]),
            kept=KeptFiles.from_json(data["kept"]),
            stats={p: (s[0], s[1], s[2], s[3], s[4]) for p, s in data["stats"].items()},
            watched={p: (s[0], s[1], s[2]) for p, s in data["watched"].items()},
            folders=dict(data["folders"]),
            excluded=tuple(data["excluded"]),
        )


def capture(git: Git, root: Path, store: Git, excluded: Sequence[Path]) -> CheckoutState:
    """Keep the main checkout at ``root`` in ``store`` (``git``: sealed on its repository, with its index).

    ``excluded`` are paths never looked at (the plugin's own folder, pytest's
    temporary folder); files open as this process's output (``pytest > log``)
    are left out too, and so is ``.pytest_cache``, which pytest writes itself.
    """
    own_output = {_identity(fd) for fd in (1, 2)} - {None}
    skip = {os.path.relpath(p, root) for p in excluded if Path(p).is_relative_to(root)} | {".pytest_cache"}
    files: dict[str, os.stat_result] = {}
    folders: dict[str, int] = {}
    for relative, info in _walk(root, skip):
        if stat.S_ISDIR(info.st_mode):
            folders[relative] = stat.S_IMODE(info.st_mode)
        elif (info.st_dev, info.st_ino) in own_output or _special(info):
            skip.add(relative)  # a FIFO or socket is someone's channel, not content to keep
        else:
            files[relative] = info
    listing = git.with_(work_tree=root).run("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    wanted = {p for p in listing.split("\0") if p in files}
    watched, budget = {}, TOTAL_CAP
    for relative, info in sorted(files.items()):
        if relative in wanted or stat.S_ISLNK(info.st_mode):
            continue
        if info.st_size <= min(FILE_CAP, budget):
            wanted.add(relative)
            budget -= info.st_size
        else:
            watched[relative] = (info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    wanted |= {p for p, info in files.items() if stat.S_ISLNK(info.st_mode)}
    entries = keep_files(store, root, sorted(wanted), links=True)
    return CheckoutState(
        root=str(root),
        kept=KeptFiles(str(store.git_dir), entries),
        stats={p: stat_of(files[p]) for p in entries},
        watched=watched,
        folders=folders,
        excluded=tuple(sorted(skip)),
    )


#: How a change that is reported but not undone ends its line: a later check finds it again.
NOT_RESTORED = " (not restored: an ignored file beyond the size kept)"
NOT_MOVED = " (not moved: not a file)"


def restore(state: CheckoutState, aside: Path) -> list[str]:
    """Put the main checkout back as ``state`` kept it; one line per path that had changed.

    What is replaced or removed is moved under ``aside`` first (made only when
    needed), at its path.  Files watched by stat only are reported, not undone.
    """
    root = Path(state.root)
    now = dict(_walk(root, set(state.excluded)))
    changes: list[str] = []
    put_back: list[str] = []
    moved: list[str] = []  # what is under a path moved aside went with it
    for relative, info in sorted(now.items()):
        if _under(relative, moved):
            continue
        if stat.S_ISDIR(info.st_mode) and relative in state.folders:
            if stat.S_IMODE(info.st_mode) != state.folders[relative]:  # made writable by all, say
                try:
                    _chmod_folder(root / relative, state.folders[relative])
                    changes.append(f"{relative}/ permissions changed")
                except OSError as exc:  # replaced since the walk
                    changes.append(f"{relative}/ permissions changed (not restored: {exc.strerror})")
            continue
        if relative in state.watched:
            if (info.st_size, info.st_mtime_ns, info.st_ctime_ns) != state.watched[relative]:
                changes.append(f"{relative} changed{NOT_RESTORED}")
            continue
        if relative in state.kept.entries:
            if not _same(root, relative, info, state):
                changes.append(f"{relative} changed")
                _move_aside(root, relative, aside)
                moved.append(relative)
                put_back.append(relative)
            continue
        if stat.S_ISDIR(info.st_mode):
            continue  # a new folder: what it holds is taken out one by one, then the folder
        if _special(info):
            changes.append(f"{relative} created{NOT_MOVED}")
            continue
        changes.append(f"{relative} created")
        _move_aside(root, relative, aside)
        moved.append(relative)
    for relative in sorted(state.kept.entries.keys() - now.keys()):
        changes.append(f"{relative} removed")
        put_back.append(relative)
    for relative in sorted(state.watched.keys() - now.keys()):
        changes.append(f"{relative} removed{NOT_RESTORED}")
    for relative in sorted(put_back):  # a parent made a file (or a link) since is moved aside first
        _clear_parents(root, relative, aside, changes)
    _put_back(state, root, sorted(put_back), aside.with_name(f".{aside.name}.restoring"))
    new_folders = [p for p, info in now.items() if stat.S_ISDIR(info.st_mode) and p not in state.folders]
    for relative in sorted(new_folders, reverse=True):
        folder = root / relative
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
    return changes


def _walk(root: Path, skip: set[str]) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under ``root`` (but its ``.git`` and ``skip``) and its lstat; links are not followed."""
    for folder, dirs, names in os.walk(root):
        base = Path(folder).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        kept_dirs = []
        for name in [*dirs, *names]:
            relative = prefix + name
            if relative in skip or (not prefix and name == ".git"):
                continue
            try:
                info = os.lstat(os.path.join(folder, name))  # not pathlib: this runs for every file, every trial
            except FileNotFoundError:
                continue
            yield relative, info
            if name in dirs and stat.S_ISDIR(info.st_mode):
                kept_dirs.append(name)
        dirs[:] = kept_dirs


def _same(root: Path, relative: str, info: os.stat_result, state: CheckoutState) -> bool:
    """Whether the file at ``relative`` still holds what was kept (read only when its stat changed)."""
    if stat_of(info) == state.stats.get(relative):
        return True
    mode, sha = state.kept.entries[relative]
    full = root / relative
    if stat.S_ISLNK(info.st_mode):
        content = os.fsencode(os.readlink(full))
        return mode == "120000" and blobs.blob_id(content, len(sha)) == sha
    if not stat.S_ISREG(info.st_mode):
        return False
    kept = state.stats.get(relative)
    if kept is not None and stat.S_IMODE(info.st_mode) != stat.S_IMODE(kept[0]):
        return False  # its permissions changed (a secret made readable to all)
    if info.st_nlink > 1 and (kept is None or info.st_ino != kept[4] or info.st_ctime_ns != kept[3]):
        return False  # linked from elsewhere since: a write there would change it
    if mode != ("100755" if info.st_mode & 0o111 else "100644"):
        return False
    digest = blobs.hasher(len(sha))(f"blob {info.st_size}\0".encode())
    with full.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == sha


def _put_back(state: CheckoutState, root: Path, paths: Sequence[str], scratch: Path) -> None:
    """Write the kept files of ``paths`` beside the checkout, then move each into place with ``os.replace``.

    A process still writing the checkout may have made a file at the path
    again since it was moved aside: it is replaced, not written through.
    """
    if not paths:
        return
    try:
        state.kept.write(scratch, paths)
        for relative in paths:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            kept = state.stats.get(relative)
            if kept is not None and not stat.S_ISLNK(kept[0]):
                os.chmod(scratch / relative, stat.S_IMODE(kept[0]))  # its own permissions, not the writer's
            os.replace(scratch / relative, root / relative)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _clear_parents(root: Path, relative: str, aside: Path, changes: list[str]) -> None:
    parts = relative.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        full = root / parent
        if _lexists(full) and (full.is_symlink() or not full.is_dir()):
            changes.append(f"{parent} replaced a folder")
            _move_aside(root, parent, aside)
            return


def _under(relative: str, prefixes: Sequence[str]) -> bool:
    return any(relative.startswith(p + "/") for p in prefixes)


def aside_folder(kept: Path, root: Path, prefix: str) -> Path:
    """A new, empty folder under ``kept`` for what a restore moves aside; elsewhere when ``kept`` is not safe.

    Made by ``mkdtemp``: its name cannot be guessed, so nothing can be planted
    there first (a link to the main checkout, or a dangling one).  ``kept``
    lies in the experiment's folder, within an unsandboxed agent's reach: when
    it, or a folder above it up to ``root``, is a link, the folder is made in
    the temporary directory instead.  The caller removes it when it stays empty.
    """
    try:
        kept.mkdir(parents=True, exist_ok=True)
        real = Path(os.path.realpath(root)) / kept.relative_to(root)
        if os.path.realpath(kept) == str(real) and stat.S_ISDIR(os.lstat(kept).st_mode):
            return Path(tempfile.mkdtemp(prefix=prefix, dir=kept))
    except (OSError, ValueError):
        pass
    return Path(tempfile.mkdtemp(prefix=prefix))


def _chmod_folder(folder: Path, mode: int) -> None:
    """``chmod`` the folder itself, never what a link put in its place since points at."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _move_aside(root: Path, relative: str, aside: Path) -> None:
    target = aside / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(root / relative, target)


def _lexists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _special(info: os.stat_result) -> bool:
    return not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode) or stat.S_ISDIR(info.st_mode))


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def checkout_snapshot(root: Path) -> dict[str, str]:
    """The main checkout's state: HEAD and a digest of every changed or untracked file.

    Two snapshots differ exactly when something changed the checkout between
    them (a commit, an edit, a new or deleted file), which no trial may do.
    """
    git = gitops.sealed(root).with_(work_tree=root)
    state = {"HEAD": git.run("rev-parse", "--verify", "--quiet", "HEAD", check=False)}
    listing = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    for entry in (e for e in listing.split("\0") if e):
        path = entry[3:]
        if "__pycache__/" in path or path.startswith(".pytest_cache/"):
            continue  # written by Python and pytest themselves
        state[path] = f"{entry[:2]} {_digest(root / path)}"
    return state


def _digest(path: Path) -> str:
    """What ``path`` holds, read without following a link or opening a FIFO (which would block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return f"link {os.readlink(path)}" if os.path.islink(path) else "missing"
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        return hashlib.sha1(file.read()).hexdigest() if stat.S_ISREG(mode) else f"mode {mode:o}"


def snapshot_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The paths (and ``HEAD``) whose state differs between two snapshots."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
