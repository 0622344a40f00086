"""Trees from files and files from trees, without trusting git state an agent could touch.

:func:`tree_of_files` reads what an agent left in its worktree as plain files
(a private index started from the base commit; ignore rules taken from the
base commit only; blobs hashed without filters), so the agent's own index,
``assume-unchanged``/``skip-worktree`` bits, ``info/exclude`` or edited
``.gitignore`` files change nothing about what is recorded.
:func:`materialize` writes a tree into a fresh folder byte for byte, again
without filters or attributes, for the sealed scoring checkout.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path

from .gitcmd import Git, GitFailed

_NULL_SHA = "0" * 40

#: What a file's ``lstat`` says that any change to it changes: (size, mtime_ns, ctime_ns, inode).
Stat = tuple[int, int, int, int]


def _stat_of(info: os.stat_result) -> Stat:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def stat_snapshot(root: Path, paths: Iterable[str]) -> dict[str, Stat]:
    """The :data:`Stat` of each of ``paths`` under ``root``, taken by the plugin right after it made the worktree.

    :func:`tree_of_files` then skips hashing a file whose stat is unchanged.
    That is sound because the ctime cannot be set by an unprivileged process:
    every write, ``chmod``, rename onto the path or re-creation (even with the
    same inode, size and a restored mtime) sets it to the current time.  A
    file whose ctime is not older than the snapshot itself is left out
    ("racy", as git calls it: a change in the same clock tick would keep the
    same ctime), so it is always hashed.  The snapshot lives in the plugin's
    memory, never in the worktree or anywhere the agent could edit it.
    """
    snapshot: dict[str, Stat] = {}
    for path in paths:
        try:
            info = os.lstat(root / path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            snapshot[path] = _stat_of(info)
    fd, marker = tempfile.mkstemp(prefix=".explore-clock-", dir=root.parent)  # same filesystem, same clock
    try:
        now = os.fstat(fd).st_ctime_ns
    finally:
        os.close(fd)
        os.unlink(marker)
    return {path: value for path, value in snapshot.items() if value[2] < now}


def tree_entries(git: Git, treeish: str) -> dict[str, tuple[str, str]]:
    """``path -> (mode, sha)`` for every file of ``treeish`` (recursively).

    An object id names the same content for ever, so listings by id are kept
    (a trial lists the base commit's tree four times); the caller gets its own copy.
    """
    if _OBJECT_ID.fullmatch(treeish):
        return dict(_kept_listing(git.git_dir, treeish))
    return _list_tree(git.git_dir, treeish)


def tree_id(git: Git, commit: str) -> str:
    """The id of ``commit``'s tree; kept when ``commit`` is an object id (it cannot change)."""
    if _OBJECT_ID.fullmatch(commit):
        return _kept_tree_id(git.git_dir, commit)
    return git.run("rev-parse", f"{commit}^{{tree}}")


_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@functools.lru_cache(maxsize=4)  # few are worth keeping: the base commit's, and the latest trial's
def _kept_listing(git_dir: Path, object_id: str) -> dict[str, tuple[str, str]]:
    return _list_tree(git_dir, object_id)


@functools.lru_cache(maxsize=64)
def _kept_tree_id(git_dir: Path, object_id: str) -> str:
    return Git(git_dir).run("rev-parse", f"{object_id}^{{tree}}")


def _list_tree(git_dir: Path, treeish: str) -> dict[str, tuple[str, str]]:
    entries = {}
    for record in Git(git_dir).run("ls-tree", "-r", "-z", "--full-tree", treeish).split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, _kind, sha = meta.split()
        entries[path] = (mode, sha)
    return entries


def tree_of_files(
    git: Git,
    base: str,
    *,
    leave: Collection[str] = (),
    skip: Collection[str] = (),
    unchanged: Mapping[str, Stat] | None = None,
) -> str:
    """The tree id of ``git.work_tree``'s files: ``base`` with every file as it is on disk now.

    ``leave`` are paths (files or folders) kept as they are at ``base``
    whatever is on disk (hold-out tests the plugin removed itself); ``skip``
    are untracked paths that are never the agent's work (files copied in by
    ``worktree.copy`` or made by ``worktree.setup``).  Nested ``.git``
    entries are never read.  ``unchanged`` is a :func:`stat_snapshot` taken
    when the worktree was made at ``base``: a file of ``base`` whose stat is
    still the same is taken as it is at ``base`` without being read.
    """
    assert git.work_tree is not None
    root = git.work_tree
    with tempfile.TemporaryDirectory(prefix="explore-index-") as scratch:
        index = git.with_(index=Path(scratch) / "index")
        index.run("read-tree", base)
        base_files = tree_entries(git, base)
        rules = Path(scratch) / "ignore"
        rules.write_text("\n".join(_base_ignore_rules(git, base, base_files)) + "\n")
        listed = index.run("ls-files", "-z", "--others", f"--exclude-from={rules}").split("\0")
        untracked = [p for p in listed if p and not under(p, skip) and ".git" not in p.split("/")]
        updates: list[str] = []
        to_hash: list[str] = []
        for path in sorted({*base_files, *untracked}):
            if under(path, leave):
                continue
            if unchanged and path in base_files and _stat_unchanged(root / path, unchanged.get(path)):
                continue
            entry = _disk_entry(root, path)
            if entry is None:
                if path in base_files:
                    updates.append(f"0 {_NULL_SHA}\t{path}")
                continue
            mode, sha, content = entry
            if base_files.get(path) == (mode, sha):
                continue
            if content is None:
                to_hash.append(path)
            else:
                sha = index.run("hash-object", "-w", "--no-filters", "--stdin", input=content)
            updates.append(f"{mode} {sha}\t{path}")
        if to_hash:
            written = index.run("hash-object", "-w", "--no-filters", "--stdin-paths", input="\n".join(to_hash)).split()
            shas = dict(zip(to_hash, written, strict=True))
            updates = [_with_sha(u, shas) for u in updates]
        if updates:
            index.run("update-index", "-z", "--index-info", input="\0".join(updates) + "\0")
        return index.run("write-tree")


def _stat_unchanged(full: Path, before: Stat | None) -> bool:
    if before is None:
        return False
    try:
        return _stat_of(full.lstat()) == before
    except OSError:
        return False


def _with_sha(update: str, shas: dict[str, str]) -> str:
    meta, path = update.split("\t", 1)
    mode, sha = meta.split()
    return f"{mode} {shas.get(path, sha)}\t{path}"


def under(path: str, prefixes: Collection[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _disk_entry(root: Path, path: str) -> tuple[str, str, bytes | None] | None:
    """``(mode, blob sha, content for symlinks)`` of a file on disk, or None when there is none.

    Regular files are hashed here (to compare with the base) and written to
    git later by ``hash-object --stdin-paths``; a symlink's blob is its
    target.  Anything else (a FIFO, a socket, a folder where a file was) is
    not a file git could record, so it counts as absent.
    """
    full = root / path
    try:
        info = full.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(info.st_mode):
        target = os.fsencode(os.readlink(full))
        return "120000", _blob_sha(target), target
    if not stat.S_ISREG(info.st_mode):
        return None
    mode = "100755" if info.st_mode & 0o111 else "100644"
    digest = hashlib.sha1(f"blob {info.st_size}\0".encode())
    with full.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return mode, digest.hexdigest(), None


def _blob_sha(content: bytes, id_length: int = 40) -> str:
    """The id git gives ``content`` as a blob (SHA-1, or SHA-256 in a repository whose ids have 64 digits)."""
    digest = hashlib.sha256() if id_length == 64 else hashlib.sha1()
    digest.update(f"blob {len(content)}\0".encode() + content)
    return digest.hexdigest()


def _base_ignore_rules(git: Git, base: str, base_files: dict[str, tuple[str, str]]) -> Iterator[str]:
    """Every ``.gitignore`` of the base commit, rewritten as patterns relative to the top.

    Git reads ``--exclude-from`` patterns relative to the top of the
    worktree; a pattern from ``dir/.gitignore`` is anchored to ``dir`` by
    prefixing it (a pattern without a slash matches at any depth below it).
    """
    for path in sorted(p for p in base_files if posixpath.basename(p) == ".gitignore"):
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


def materialize(git: Git, treeish: str, target: Path) -> None:
    """Write every file of ``treeish`` under ``target`` (which must not exist yet), byte for byte.

    No filters, attributes or hooks take part; paths that could leave the
    folder (absolute, ``..``, ``.git``) are refused before anything is
    written.  The blobs come from one ``git cat-file --batch`` read as a
    stream (one blob in memory at a time) and are written with
    ``os.open(O_EXCL | O_NOFOLLOW)``, so nothing the tree holds, such as a
    symlink written earlier, redirects a write.
    """
    entries = tree_entries(git, treeish)
    for path in entries:
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
            raise GitFailed(f"refusing to write the unsafe path {path!r} of {treeish}")
    target.mkdir(parents=True)
    write_files(git, entries, target)


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
    with tempfile.TemporaryDirectory(prefix="explore-blobs-") as scratch:
        wanted = Path(scratch) / "blobs"
        wanted.write_text("".join(f"{sha}\n" for sha in paths_of))
        with git.stream("cat-file", "--batch", stdin=wanted) as out:
            for sha, paths in paths_of.items():
                header = out.readline().split()
                if len(header) != 3 or header[0].decode() != sha:
                    raise GitFailed(f"git cat-file --batch: unexpected answer {header!r} for {sha}")
                size = int(header[2])
                content = out.read(size)
                if len(content) != size or out.read(1) != b"\n":
                    raise GitFailed(f"git cat-file --batch: {sha} was cut short")
                if header[1] != b"blob" or _blob_sha(content, len(sha)) != sha:
                    raise ForgedObject(
                        f"{paths[0][0]}: the object {sha} in {git.git_dir} does not hold what its id says "
                        "(forged or corrupt); nothing was written from it"
                    )
                for path, mode in paths:
                    _write_entry(target / path, mode, content)


class ForgedObject(GitFailed):
    """A blob whose content does not hash to its id: written over in the object store, never used."""


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _write_entry(full: Path, mode: str, content: bytes) -> None:
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


def remove_tree(path: Path) -> None:
    """Remove a folder the plugin made, also when the code it ran left read-only folders in it."""
    if not path.exists():
        return
    for folder, _dirs, _files in os.walk(path):
        os.chmod(folder, 0o700)
    shutil.rmtree(path)
