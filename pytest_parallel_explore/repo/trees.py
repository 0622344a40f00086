"""A tree from an agent's files, without trusting git state an agent could touch.

:func:`tree_of_files` reads what an agent left in its worktree as plain files
(a private index started from the base commit; ignore rules taken from the
base commit only; blobs hashed without filters), so the agent's own index,
``assume-unchanged``/``skip-worktree`` bits, ``info/exclude`` or edited
``.gitignore`` files change nothing about what is recorded.  The files are
hostile input, read like a file-format library reads an archive: through
directory descriptors and ``O_NOFOLLOW``, names checked, sizes bounded.
Writing a tree out into files is :mod:`.treefiles`'s job.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import posixpath
import stat
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path

from ..model.limits import DEFAULT_LIMITS, Limits
from . import blobs, pathnames
from .gitcmd import Git
from .treefiles import OBJECT_ID, index_of, tree_changes, tree_entries, tree_id
from .worktreestat import Stat, stat_of

_NULL_SHA = "0" * 40
_GITLINK = "160000"


class LimitExceeded(Exception):
    """The agent's files are more than the trial's ``limits`` allow; nothing was added to the repository."""


@dataclasses.dataclass(frozen=True)
class FilesTree:
    """What :func:`tree_of_files` made of a worktree: the tree, its commit if asked, the files it could not record."""

    tree: str
    left_out: list[str]  # file names (as ``repr`` shows them) that cannot be recorded safely, or git would not
    commit: str | None = None  # the commit asked for (``message``); ``base`` itself when nothing changed


def tree_of_files(
    git: Git,
    base: str,
    *,
    message: str | None = None,
    leave: Collection[str] = (),
    skip: Collection[str] = (),
    unchanged: Mapping[str, Stat] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> FilesTree:
    """The tree of ``git.work_tree``'s files: ``base`` with every file as it is on disk now.

    ``message``: also a commit of that tree with ``base`` as its parent
    (``base`` itself when the tree is ``base``'s).  ``leave`` are paths
    (files or folders) kept as they are at ``base`` whatever is on disk
    (hold-out tests the plugin removed itself); ``skip`` are untracked
    paths that are never the agent's work (files copied in by
    ``worktree.copy`` or made by ``worktree.setup``).  Nested ``.git``
    entries are never read.  ``unchanged`` is a snapshot (see :mod:`.worktreestat`) taken
    when the worktree was made at ``base``: a file of ``base`` whose stat is
    still the same is taken as it is at ``base`` without being read.

    The files are hostile input: no symlink is followed (a symlink is
    recorded as one, and nothing below a symlinked folder is read), a name
    with a control character or that is not UTF-8, or that git will not
    index (a spelling of ``.git``), a ``.gitmodules`` (see
    :func:`.pathnames.gitmodules_name`) and a folder with a ``.git`` of its
    own are left out (and said in ``left_out``); a submodule stays as at ``base``;
    paths reach git NUL-separated only, and the new blobs
    are written only once every file was read within ``limits``; past
    them, :class:`LimitExceeded` is raised and the repository has no new object.

    A commit whose every changed path is plainly one git records
    (:func:`.pathnames.all_plain`) is made by the ``fast-import`` that writes the blobs,
    from ``base`` and the changes alone; any other goes through an index,
    which refuses what git will not record.
    """
    assert git.work_tree is not None
    with tempfile.TemporaryDirectory(prefix="explore-index-") as scratch:
        base_files = tree_entries(git, base)
        rules = Path(scratch) / "ignore"
        rules.write_text("\n".join(_base_ignore_rules(git, base, base_files)) + "\n")
        index_file = Path(scratch) / "index"
        index = git.with_(index=index_file)
        if OBJECT_ID.fullmatch(base):
            index_file.write_bytes(index_of(git.git_dir, base))
        else:
            index.run("read-tree", base)
        listed = index.run("ls-files", "-z", "--others", f"--exclude-from={rules}").split("\0")
        untracked = [p for p in listed if p and not under(p, skip) and ".git" not in p.split("/")]
        # A folder holding a .git of its own is listed as "folder/": git records none of its files.
        hostile = {path: shown for path in untracked if (shown := pathnames.hostile_name(path) or _nested(path))}
        paths = sorted({*base_files, *untracked} - hostile.keys())
        digest = blobs.hasher(len(tree_id(git, base)))
        with _Folders(git.work_tree) as folders, blobs.new_objects(git) as staged:
            removed, changed = _changed_entries(
                folders, paths, base_files, leave, unchanged or {}, _Budget(limits), digest, staged
            )
            # Never recorded from a trial: its content decides whether the user's repository passes git fsck.
            hostile.update({path: repr(path) for _mode, _sha, path in changed if pathnames.gitmodules_name(path)})
            changed = [entry for entry in changed if entry[2] not in hostile]
            direct = message is not None and bool(removed or changed) and pathnames.all_plain(removed, changed)
            if direct:
                assert message is not None
                staged.commit(base, message, removed, changed)
        if direct and staged.commit_id is not None:
            return FilesTree(
                git.run("rev-parse", f"{staged.commit_id}^{{tree}}"), list(hostile.values()), staged.commit_id
            )
        updates = [*(f"0 {_NULL_SHA}\t{path}" for path in removed), *(f"{m} {sha}\t{p}" for m, sha, p in changed)]
        if updates:
            index.run("update-index", "-z", "--index-info", input=pathnames.encoded("\0".join(updates) + "\0"))
        tree = index.run("write-tree")
        # git skips a path it will not index (".GIT/x", "git~1/x", ".git./x": "Ignoring path"), and exits 0.
        recorded = tree_changes(git, base, tree) if updates else {}
        refused = [path for _mode, _sha, path in changed if path not in recorded]
        commit = None
        if message is not None:
            commit = git.run("commit-tree", tree, "-p", base, "-m", message) if tree != tree_id(git, base) else base
        return FilesTree(tree, [*hostile.values(), *map(repr, refused)], commit)


def _nested(path: str) -> str | None:
    return repr(path) if path.endswith("/") else None


def _changed_entries(
    folders: _Folders,
    paths: Iterable[str],
    base_files: Mapping[str, tuple[str, str]],
    leave: Collection[str],
    unchanged: Mapping[str, Stat],
    budget: _Budget,
    digest: Callable[[bytes], blobs.Hash],
    staged: blobs.NewObjects,
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The paths of ``base_files`` gone from disk, and ``(mode, blob id, path)`` of every path that differs.

    The new blobs are staged while the files are read, to be added to the
    repository together once all were read within ``budget``.
    """
    removed: list[str] = []
    changed: list[tuple[str, str, str]] = []
    for path in paths:
        if leave and under(path, leave):
            continue
        base = base_files.get(path)
        if base is not None and base[0] == _GITLINK:  # a submodule: an empty folder here, never the agent's
            continue
        entry = _disk_entry(folders, path, base, unchanged.get(path), budget, digest)
        if entry is _UNCHANGED:
            continue
        if entry is None:
            if base is not None:
                removed.append(path)
            continue
        mode, sha, content = entry
        if base == (mode, sha):
            continue
        budget.add(len(content) if content is not None else 0)
        if content is not None:
            staged(content, sha)
        changed.append((mode, sha, path))
    return removed, changed


@dataclasses.dataclass
class _Budget:
    """What a trial's added and changed files took so far, against its limits."""

    limits: Limits
    files: int = 0
    size: int = 0

    @property
    def file_size(self) -> int:
        return _bound(self.limits.file_size)

    def add(self, size: int) -> None:
        self.files += 1
        self.size += size
        if self.files > _bound(self.limits.files):
            raise LimitExceeded(f"{self.files} files added or changed (limits.files: {self.limits.files})")
        if self.size > _bound(self.limits.trial_size):
            limit = self.limits.trial_size
            raise LimitExceeded(f"more than {limit} bytes added or changed (limits.trial_size: {limit})")

    def too_big(self, path: str, size: int) -> LimitExceeded:
        return LimitExceeded(f"{path!r} has {size} bytes (limits.file_size: {self.limits.file_size})")


def _bound(limit: int | None) -> int:
    """A limit as a number to compare with; ``None`` (``null`` in the variants file) bounds nothing."""
    return sys.maxsize if limit is None else limit


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: O_NONBLOCK: a FIFO put where a file was must not hang the plugin (it is not recorded: fstat says what it is).
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
#: What opening a path the agent may have removed, replaced by a symlink or made unreadable gives: no file to record.
_NOT_A_FILE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES, errno.ENXIO})


class _Folders:
    """The worktree's folders, opened one component at a time relative to the one above, never through a symlink.

    The chain of the folder asked for last stays open: paths come sorted,
    so each folder is opened once and at most one chain of descriptors is held.
    """

    def __init__(self, root: Path) -> None:
        self._root = os.open(root, _DIRECTORY)
        self._chain: list[tuple[bytes, int]] = []
        self._last: tuple[bytes, int | None] | None = None  # the folder asked for last, and its answer

    def __enter__(self) -> _Folders:
        return self

    def __exit__(self, *exc: object) -> None:
        for _name, fd in self._chain:
            os.close(fd)
        os.close(self._root)

    def fd_of(self, folder: bytes) -> int | None:
        """A descriptor of ``folder`` (``b""`` is the top), or None when it is not a real folder of the worktree."""
        if self._last is not None and self._last[0] == folder:  # the files of a folder come one after another
            return self._last[1]
        found = self._open(folder)
        self._last = (folder, found)
        return found

    def _open(self, folder: bytes) -> int | None:
        parts = folder.split(b"/") if folder else []
        same = 0
        while same < min(len(parts), len(self._chain)) and self._chain[same][0] == parts[same]:
            same += 1
        for _name, fd in self._chain[same:]:
            os.close(fd)
        del self._chain[same:]
        for part in parts[same:]:
            parent = self._chain[-1][1] if self._chain else self._root
            try:
                self._chain.append((part, os.open(part, _DIRECTORY, dir_fd=parent)))
            except OSError as exc:
                if exc.errno in _NOT_A_FILE:
                    return None
                raise
        return self._chain[-1][1] if self._chain else self._root


def read_inside(root: Path, relative: str, cap: int) -> bytes | None:
    """The regular file at ``relative`` under ``root``, opened without following any link, up to ``cap`` bytes.

    None when there is none: a link (at any depth), a FIFO, a folder, or a file larger than ``cap``.
    For reports a suite wrote, which the code it ran could have replaced.
    """
    folder, _, name = relative.rpartition("/")
    try:
        with _Folders(root) as folders:
            parent = folders.fd_of(os.fsencode(folder))
            if parent is None:
                return None
            fd = os.open(name, _READ, dir_fd=parent)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
            return None
        return file.read(cap)


#: What :func:`_disk_entry` gives for a file of the base whose stat is as when the worktree was made.
_UNCHANGED = ("", "", None)


def _disk_entry(
    folders: _Folders,
    path: str,
    base: tuple[str, str] | None,
    before: Stat | None,
    budget: _Budget,
    digest: Callable[[bytes], blobs.Hash],
) -> tuple[str, str, bytes | None] | None:
    """``(mode, blob id, content)`` of the file at ``path`` on disk, or None when there is none.

    :data:`_UNCHANGED` when the file is as ``before`` says (so ``base``'s, not
    read again); ``content`` is None when the blob is ``base``'s (too big to
    hold but the same).  A symlink's blob is its target, whatever it
    points at.  Anything else (a FIFO, a socket, a folder where a file was,
    a file below a symlinked folder) is not a file git could record here, so
    it counts as absent.
    """
    folder, _, name = pathnames.encoded(path).rpartition(b"/")
    fd = folders.fd_of(folder)
    if fd is None:
        return None
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NOT_A_FILE:
            return None
        raise
    if base is not None and before is not None and stat_of(info) == before:
        return _UNCHANGED
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(name, dir_fd=fd)
        return "120000", blobs.digest_blob_id(digest, target), target
    if not stat.S_ISREG(info.st_mode):
        return None
    return _read_file(fd, name, path, base, budget, digest)


def _read_file(
    folder: int,
    name: bytes,
    path: str,
    base: tuple[str, str] | None,
    budget: _Budget,
    digest: Callable[[bytes], blobs.Hash],
) -> tuple[str, str, bytes | None] | None:
    """Read a regular file, opened without following a symlink; one bigger than allowed may only be ``base``'s blob."""
    try:
        handle = os.open(name, _READ, dir_fd=folder)
    except OSError as exc:
        if exc.errno in _NOT_A_FILE:
            return None
        raise
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):  # replaced since it was looked at
            return None
        mode = "100755" if info.st_mode & 0o111 else "100644"
        limit = budget.file_size
        if info.st_size <= limit:
            content = _read_up_to(handle, info.st_size, limit + 1)
            if len(content) > limit:
                raise budget.too_big(path, len(content))
            return mode, blobs.digest_blob_id(digest, content), content
        # Too big to store; the same as the base's blob is fine (the user's own large file, unchanged).
        hashed = digest(f"blob {info.st_size}\0".encode())
        total = 0
        while chunk := os.read(handle, _CHUNK):
            hashed.update(chunk)
            total += len(chunk)
        if base is None or total != info.st_size or hashed.hexdigest() != base[1]:
            raise budget.too_big(path, max(total, info.st_size))
        return mode, base[1], None
    finally:
        os.close(handle)


_CHUNK = 1 << 20


def _read_up_to(handle: int, expected: int, size: int) -> bytes:
    """At most ``size`` bytes of a file ``fstat`` said has ``expected``: one read, so a big file is held once."""
    data = os.read(handle, min(expected + 1, size))  # one byte more shows a file that grew since
    while len(data) < size and (chunk := os.read(handle, min(size - len(data), _CHUNK))):
        data += chunk
    return data


def under(path: str, prefixes: Collection[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _base_ignore_rules(git: Git, base: str, base_files: dict[str, tuple[str, str]]) -> Iterator[str]:
    """Every ``.gitignore`` of the base commit, rewritten as patterns relative to the top.

    Git reads ``--exclude-from`` patterns relative to the top of the
    worktree; a pattern from ``dir/.gitignore`` is anchored to ``dir`` by
    prefixing it (a pattern without a slash matches at any depth below it).
    """
    for path in sorted(p for p in base_files if p.endswith(".gitignore") and posixpath.basename(p) == ".gitignore"):
        folder = posixpath.dirname(path)
        text = git.run("cat-file", "blob", base_files[path][1])
        for raw in text.splitlines():
            line = raw.rstrip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:] if negate else line
            if folder:
                body = pattern.rstrip("/")
                anchored = "/" in body
                pattern = f"/{folder}/{pattern.lstrip('/')}" if anchored else f"/{folder}/**/{pattern}"
            yield ("!" if negate else "") + pattern
