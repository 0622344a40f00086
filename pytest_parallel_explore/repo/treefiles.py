"""A tree's files, read from git without a checkout: listed, written into a fresh folder, removed again.

Listings and tree ids are kept by object id (an id names the same content for
ever).  :func:`materialize` writes a tree into a fresh folder byte for byte,
without filters or attributes, for the sealed scoring checkout; the opposite
direction, a tree from an agent's files, is :mod:`.trees`'s job.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from . import blobs
from .gitcmd import Git, GitFailed

#: What a file's ``lstat`` says that any change to it changes: (mode, size, mtime_ns, ctime_ns, inode).
#: A process can set a file's mtime back, not its ctime; a write, rename, link or ``chmod`` moves it.
Stat = tuple[int, int, int, int, int]


def stat_of(info: os.stat_result) -> Stat:
    return (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def tree_entries(git: Git, treeish: str, *, near: str | None = None) -> dict[str, tuple[str, str]]:
    """``path -> (mode, sha)`` for every file of ``treeish`` (recursively).

    An object id names the same content for ever, so listings by id are kept
    (a trial lists the base commit's tree four times); the caller gets its own copy.
    ``near`` is a tree or commit listed already that ``treeish`` differs from
    little (the base commit of a trial's tree): its listing, changed where
    ``git diff-tree`` says, saves listing (and parsing) every file again.
    """
    if near is not None:
        entries = tree_entries(git, near)
        for path, (_before, after) in tree_changes(git, near, treeish).items():
            if after is None:
                del entries[path]
            else:
                entries[path] = after
        return entries
    if OBJECT_ID.fullmatch(treeish):
        return dict(_kept_listing(git.git_dir, treeish))
    return _list_tree(git.git_dir, treeish)


@functools.lru_cache(maxsize=4)
def index_of(git_dir: Path, commit: str) -> bytes:
    """The index ``read-tree commit`` writes (an object id): made once a process, kept in memory.

    A trial's read-back and its new private repository each start from one (at 20,000 files, 15 ms of git each).
    """
    with tempfile.TemporaryDirectory(prefix="explore-index-") as scratch:
        index = Path(scratch) / "index"
        Git(git_dir, index=index).run("read-tree", commit)
        return index.read_bytes()


def tree_id(git: Git, commit: str) -> str:
    """The id of ``commit``'s tree; kept when ``commit`` is an object id (it cannot change)."""
    if not OBJECT_ID.fullmatch(commit):
        return git.run("rev-parse", f"{commit}^{{tree}}")
    key = (git.git_dir, commit)
    tree = _tree_ids.get(key)
    if tree is None:
        tree = git.run("rev-parse", f"{commit}^{{tree}}")
        note_tree(git, commit, tree)
    return tree


def note_tree(git: Git, object_id: str, tree: str) -> None:
    """Keep that ``object_id`` (a commit the plugin just made, or the tree itself) has the tree ``tree``."""
    with _tree_ids_lock:  # the baseline's runs note and ask from threads of their own
        _tree_ids[(git.git_dir, object_id)] = tree
        while len(_tree_ids) > 64:  # the oldest go first (dicts keep their order)
            del _tree_ids[next(iter(_tree_ids))]


_tree_ids: dict[tuple[Path, str], str] = {}
_tree_ids_lock = threading.Lock()


OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

#: An entry of a tree, or None where the tree has no file.
Side = tuple[str, str] | None


def tree_changes(git: Git, before: str, after: str) -> dict[str, tuple[Side, Side]]:
    """``path -> (entry in before, entry in after)`` for every file that differs between two trees or commits.

    From ``git diff-tree`` (C): a trial's change costs what it changed, not a
    listing of every file of both trees.  Kept for object ids, like listings.
    """
    if OBJECT_ID.fullmatch(before) and OBJECT_ID.fullmatch(after):
        return dict(_kept_changes(git.git_dir, before, after))
    return _diff_trees(git.git_dir, before, after)


@functools.lru_cache(maxsize=8)
def _kept_changes(git_dir: Path, before: str, after: str) -> dict[str, tuple[Side, Side]]:
    return _diff_trees(git_dir, before, after)


def _diff_trees(git_dir: Path, before: str, after: str) -> dict[str, tuple[Side, Side]]:
    args = ("diff-tree", "-r", "-z", "--no-abbrev", "--no-renames", "--ignore-submodules=none", before, after)
    fields = Git(git_dir).run(*args).split("\0")
    changes: dict[str, tuple[Side, Side]] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):  # the output ends with a lone ""
        old_mode, new_mode, old_sha, new_sha, _status = meta.lstrip(":").split(" ")
        changes[path] = (_side(old_mode, old_sha), _side(new_mode, new_sha))
    return changes


def _side(mode: str, sha: str) -> Side:
    return None if mode == "000000" else (mode, sha)


@functools.lru_cache(maxsize=4)  # few are worth keeping: the base commit's, and the latest trial's
def _kept_listing(git_dir: Path, object_id: str) -> dict[str, tuple[str, str]]:
    return _list_tree(git_dir, object_id)


def _list_tree(git_dir: Path, treeish: str) -> dict[str, tuple[str, str]]:
    entries = {}
    for record in Git(git_dir).run("ls-tree", "-r", "-z", "--full-tree", treeish).split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, _kind, sha = meta.split()
        entries[path] = (mode, sha)
    return entries


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
    refuse_unsafe(entries, treeish)
    target.mkdir(parents=True)
    blobs.write_files(git, entries, target)


def refuse_unsafe(paths: Iterable[str], source: str) -> None:
    """Raise for a path that could leave the folder it is written to: absolute, with ``..`` or ``.git``."""
    for path in paths:
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
            raise GitFailed(f"refusing to write the unsafe path {path!r} of {source}")


def drop_default_acl(folder: int | Path) -> None:
    """Remove a default ACL from ``folder`` (a descriptor, or a path not followed if a link).

    Code run in a folder the plugin writes into again (the kept scoring
    checkout) could leave one that denies every permission: each file the
    plugin writes there next would be made unreadable, its mode untouched.
    """
    try:
        if isinstance(folder, int):
            os.removexattr(folder, _DEFAULT_ACL)
        else:
            os.removexattr(folder, _DEFAULT_ACL, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.ENOENT):
            raise


_DEFAULT_ACL = "system.posix_acl_default"


def real_parents(top: Path, relative: str) -> None:
    """Make every folder between ``top`` and ``relative`` a real one: a link or file there (committed by an
    agent, or left by a set-up command) is removed, never followed, before the plugin writes below it."""
    parts = relative.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = top.joinpath(*parts[:depth])
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            return  # the writing makes it, and those below
        if not stat.S_ISDIR(info.st_mode):
            remove_tree(folder)
            return


def remove_tree(path: Path) -> None:
    """Remove a folder the plugin made, whatever the code it ran left in it; or whatever is at ``path`` now.

    Nothing in it is trusted: no link is followed (``path`` itself included:
    a link is removed, never what it points at), nothing is opened (a FIFO
    would block), read-only folders are made writable first, and depth costs
    no recursion: every sub-folder is first moved up to the top, so a chain
    of thousands of nested folders is a flat list with short paths.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        path.unlink()
        return
    pending, moved, token = [path], 0, os.urandom(6).hex()
    while pending:
        folder = pending.pop()
        os.chmod(folder, 0o700)
        with os.scandir(folder) as entries:
            children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        inside = f"{folder}/"  # strings, not Paths: one a file was most of the cost
        for name, is_folder in children:
            if not is_folder:
                os.unlink(inside + name)
            elif folder == path:
                pending.append(folder / name)
            else:  # up to the top, under a name of its own: the path stays short
                moved += 1
                flat = path / f".explore-removing-{token}-{moved}"
                os.rename(folder / name, flat)
                pending.append(flat)
        if folder != path:
            os.rmdir(folder)  # empty: its files are gone and its folders moved up
    os.rmdir(path)
