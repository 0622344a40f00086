"""Blobs into and out of git, none of them trusted.

Ids are computed here (:func:`blob_id`), not asked of git.  New blobs are
written in one pack that joins the repository only when every one of them
was accepted (:func:`new_objects`); blobs are read back hashed again
(:func:`read_blobs`: anyone who can write the object folder can replace a
loose object), and written into a folder without following any link
(:func:`write_files`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

from .gitcmd import IDENTITY, Git, GitFailed


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def hasher(id_length: int) -> Callable[[bytes], Hash]:
    """The hash of a repository whose object ids have ``id_length`` digits: SHA-256 for 64, else SHA-1."""
    return hashlib.sha256 if id_length == 64 else hashlib.sha1


def blob_id(content: bytes, id_length: int = 40) -> str:
    """The id git gives ``content`` as a blob."""
    return digest_blob_id(hasher(id_length), content)


def digest_blob_id(digest: Callable[[bytes], Hash], content: bytes) -> str:
    hashed = digest(f"blob {len(content)}\0".encode())
    hashed.update(content)
    return hashed.hexdigest()


@contextlib.contextmanager
def new_objects(git: Git) -> Iterator[NewObjects]:
    """Stage blobs (and at most one commit); when the block ends, all of them join the repository at once.

    ``git fast-import`` writes them (one process, one pack, no path given to
    git) in a scratch repository that borrows ``git``'s objects; they join
    ``git``'s objects only if the block ends normally.  When it raises (a
    limit reached), the scratch repository is dropped: ``git`` gains nothing.
    """
    with tempfile.TemporaryDirectory(prefix="explore-objects-", dir=git.git_dir) as scratch:
        staging = Path(scratch)
        for folder in ("refs", "objects/info", "objects/pack"):
            (staging / folder).mkdir(parents=True)
        (staging / "HEAD").write_text("ref: refs/heads/import\n")
        (staging / "objects" / "info" / "alternates").write_text(f"{git.git_dir / 'objects'}\n")
        with contextlib.ExitStack() as stack:
            objects = NewObjects(Git(staging, made_here=True), stack)
            yield objects
        objects.commit_id = objects.committed()
        _move_objects(staging / "objects", git.git_dir / "objects")


class NewObjects:
    """What :func:`new_objects` stages: call it with a blob's content; :meth:`commit` once, after the blobs."""

    def __init__(self, staging: Git, stack: contextlib.ExitStack) -> None:
        self._staging = staging
        self._stack = stack
        self._feed: IO[bytes] | None = None
        self._marks: dict[str, int] = {}  # blob id -> its mark in the import
        self._commit_mark = 0  # the staged commit's mark; 0: none
        self.commit_id: str | None = None  # once the block ended, the commit's id (if one was staged)

    def __call__(self, content: bytes, sha: str | None = None) -> None:
        """Stage a blob (``sha``: its id, when the caller has it already)."""
        sha = sha or blob_id(content)
        if sha not in self._marks:
            self._marks[sha] = len(self._marks) + 1
            feed = self._started()
            feed.write(b"blob\nmark :%d\ndata %d\n" % (self._marks[sha], len(content)))
            feed.write(content)
            feed.write(b"\n")

    def commit(
        self, parent: str, message: str, removed: Sequence[str], changed: Sequence[tuple[str, str, str]]
    ) -> None:
        """Stage a commit of ``parent`` with ``removed`` paths gone and ``changed`` ``(mode, blob id, path)`` set.

        Each path must be one git records as it is (see ``trees``): fast-import checks none.
        """
        assert not self._commit_mark, "one commit an import"
        who = f"{IDENTITY['GIT_COMMITTER_NAME']} <{IDENTITY['GIT_COMMITTER_EMAIL']}> {int(time.time())} +0000"
        text = message.encode()
        self._commit_mark = len(self._marks) + 1
        lines = [b"commit refs/heads/import", b"mark :%d" % self._commit_mark]
        lines += [f"author {who}".encode(), f"committer {who}".encode()]
        lines += [b"data %d" % len(text) + b"\n" + text, f"from {parent}".encode()]
        lines += [b"D " + os.fsencode(path) for path in removed]
        lines += [f"M {mode} {self._dataref(sha)} ".encode() + os.fsencode(path) for mode, sha, path in changed]
        self._started().write(b"\n".join(lines) + b"\n\n")

    def _dataref(self, sha: str) -> str:
        """A blob staged here by its mark; one already in the repository (a big file's new mode) by its id."""
        mark = self._marks.get(sha)
        return sha if mark is None else f":{mark}"

    def committed(self) -> str | None:
        """The id of the commit staged, read from the marks fast-import exported (once it ended)."""
        if not self._commit_mark:
            return None
        for line in (self._staging.git_dir / "marks").read_text().splitlines():
            mark, _, sha = line.partition(" ")
            if mark == f":{self._commit_mark}":
                return sha
        raise GitFailed("git fast-import: no commit was made")

    def _started(self) -> IO[bytes]:
        if self._feed is None:
            # Blobs over 1 MiB are streamed to the pack, not held again in fast-import's memory.
            marks = f"--export-marks={self._staging.git_dir / 'marks'}"
            importer = self._staging.feed("fast-import", "--quiet", "--big-file-threshold=1m", marks)
            self._feed = self._stack.enter_context(importer)
        return self._feed


def _move_objects(staging: Path, objects: Path) -> None:
    """Move loose objects and packs from ``staging`` into ``objects``; a pack's index last, so git never sees half."""
    for folder in sorted(p for p in staging.iterdir() if p.is_dir() and p.name not in ("pack", "info")):
        (objects / folder.name).mkdir(exist_ok=True)
        for loose in folder.iterdir():
            os.replace(loose, objects / folder.name / loose.name)
    packs = staging / "pack"
    for suffix in (".pack", ".rev", ".idx"):
        for found in sorted(packs.glob(f"pack-*{suffix}")) if packs.is_dir() else ():
            os.replace(found, objects / "pack" / found.name)
            if suffix == ".idx":  # git hashed every object as it wrote it
                note_true(stamp(objects / "pack" / found.name, objects / "pack" / found.with_suffix(".pack").name))


#: Files of git's object store this process knows true (git wrote them here, or verified them), by
#: :func:`stamp`: each one written during a run is verified once, and again only once it changes.
_known_true: set[tuple[str, int]] = set()
_known_true_lock = threading.Lock()


def stamp(path: Path, *parts: Path) -> tuple[str, int]:
    """``path`` as it is now: its name and the newest ctime of it, of ``parts`` and of what a folder holds.

    The ctime is -1 when one of them is not there.
    """
    newest = -1
    try:
        for part in (path, *parts):
            newest = max(newest, os.lstat(part).st_ctime_ns)
            if part.is_dir() and not part.is_symlink():
                newest = max([newest, *(os.lstat(entry).st_ctime_ns for entry in part.iterdir())])
    except OSError:
        newest = -1
    return str(path), newest


def note_true(key: tuple[str, int]) -> None:
    """Remember ``key`` (a :func:`stamp` taken before the file was checked) as true."""
    with _known_true_lock:
        _known_true.add(key)


def known_true(key: tuple[str, int]) -> bool:
    with _known_true_lock:
        return key in _known_true


def write_files(git: Git, entries: Mapping[str, tuple[str, str]], target: Path) -> None:
    """Write ``path -> (mode, blob id)`` under the existing folder ``target``, each blob checked against its id.

    A loose object is read back without git checking that its content still
    hashes to its name, and anyone who can write the object folder can
    replace it: so each blob is hashed again here, and one that does not
    match its id stops the writing (:class:`ForgedObject`, naming the path).
    """
    folders = sorted({posixpath.dirname(p) for p in entries} - {""})
    for folder in folders:  # parents first (sorted), each made once
        os.makedirs(target / folder, exist_ok=True)
    paths_of: dict[str, list[tuple[str, str]]] = {}
    for path, (mode, sha) in entries.items():
        if mode == "160000":  # a submodule: an empty folder, as git leaves it
            (target / path).mkdir(exist_ok=True)
        else:
            paths_of.setdefault(sha, []).append((path, mode))
    if not paths_of:
        return
    names = {sha: paths[0][0] for sha, paths in paths_of.items()}
    top = f"{target}/"  # strings, not Paths: a Path per file was a third of the cost
    for paths, content in zip(paths_of.values(), read_blobs(git, list(paths_of), names), strict=True):
        for path, mode in paths:
            _write_entry(top + path, mode, content)


def read_blobs(git: Git, ids: Sequence[str], names: Mapping[str, str] | None = None) -> Iterator[bytes]:
    """The content of each blob of ``ids``, in order, from one ``git cat-file --batch`` read as a stream.

    One blob is in memory at a time.  A loose object is read back without git
    checking that its content still hashes to its name, and anyone who can
    write the object folder can replace it: so each blob is hashed again, and
    one that does not match its id raises :class:`ForgedObject`, naming
    ``names[id]`` (a path it is written to) when given.
    """
    with tempfile.TemporaryDirectory(prefix="explore-blobs-") as scratch:
        wanted = Path(scratch) / "blobs"
        wanted.write_text("".join(f"{sha}\n" for sha in ids))
        with git.stream("cat-file", "--batch", stdin=wanted) as out:
            for sha in ids:
                header = out.readline().split()
                if len(header) != 3 or header[0].decode() != sha:
                    raise GitFailed(f"git cat-file --batch: unexpected answer {header!r} for {sha}")
                size = int(header[2])
                content = out.read(size)
                if len(content) != size or out.read(1) != b"\n":
                    raise GitFailed(f"git cat-file --batch: {sha} was cut short")
                if header[1] != b"blob" or blob_id(content, len(sha)) != sha:
                    where = (names or {}).get(sha, sha)
                    raise ForgedObject(
                        f"{where}: the object {sha} in {git.git_dir} does not hold what its id says "
                        "(forged or corrupt); nothing was written from it"
                    )
                yield content


class ForgedObject(GitFailed):
    """A blob whose content does not hash to its id: written over in the object store, never used."""


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _write_entry(full: str, mode: str, content: bytes) -> None:
    if mode == "120000":
        os.symlink(content, full)
        return
    fd = os.open(full, _CREATE, 0o755 if mode == "100755" else 0o644)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    if mode == "100755":
        os.chmod(full, 0o755)  # whatever the umask, as before
