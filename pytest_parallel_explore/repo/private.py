"""A trial's private repository: the base commit without the hold-out, and no path to the user's git.

An agent works in a repository of its own (``<experiment>/worktrees/<trial>/``
with its own ``.git`` folder), not in a linked worktree of the user's: so
whatever it does with git (move refs, plant hooks or filters, replace its
index or ``HEAD`` with symlinks) happens in a repository the plugin never
reads after the agent ran; it discards that ``.git`` instead (see
:func:`reset_git`).  The repository holds one commit, the base tree without
the hold-out paths, whose objects are built once per experiment, base and
hold-out (:func:`shared_base`) in one pack that every trial borrows read-only
through ``objects/info/alternates``; so a trial costs about a checkout, and no
object holding hold-out content is within the agent's reach.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import treefiles
from .gitcmd import Git

_BASE_REF = "refs/heads/base"


@dataclasses.dataclass(frozen=True)
class SharedBase:
    """The objects every trial of an experiment starts from: a bare repository, and its one commit."""

    store: Path
    commit: str


def shared_base(user_git_dir: Path, folder: Path, base: str, holdout: Sequence[str]) -> SharedBase:
    """The base commit without ``holdout``, as one pack in a bare repository under ``folder``; built once.

    Built in a scratch repository that borrows the user's objects (read
    only) while it writes the new trees and the commit, then packs only
    what that commit reaches and stops borrowing: the user's object store
    gains nothing, and the store holds nothing of the hold-out.  Concurrent
    callers (xdist workers) wait for the first one's build.
    """
    key = hashlib.sha1("\0".join([base, *sorted(holdout)]).encode()).hexdigest()[:16]
    store = folder / key
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        if not (store / _BASE_REF).is_file():
            scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=folder))
            try:
                _build(user_git_dir, scratch, base, holdout)
                treefiles.remove_tree(store)  # one whose ref is gone (deleted by hand, or by an unsandboxed agent)
                os.replace(scratch, store)
            finally:
                treefiles.remove_tree(scratch)  # gone already, unless the build failed
    return SharedBase(store, _base_commit(store))


def _base_commit(store: Path) -> str:
    """The commit of the store's base ref: read from its file (asked after every step), or from git when odd."""
    try:
        commit = (store / _BASE_REF).read_text().strip()
    except OSError:
        commit = ""
    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        return commit
    return Git(store).run("rev-parse", "--verify", _BASE_REF)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _build(user_git_dir: Path, store: Path, base: str, holdout: Sequence[str]) -> None:
    git = Git(store, index=store / "scratch-index")
    git.run("init", "--quiet", "--bare", "--template=")
    borrowed = store / "objects" / "info" / "alternates"
    borrowed.write_text(f"{user_git_dir / 'objects'}\n")
    git.run("read-tree", base)
    if holdout:
        listing = git.run("ls-files", "-z", "--", *(f":(literal){h}" for h in holdout))
        removals = "".join(f"0 {'0' * 40}\t{path}\0" for path in listing.split("\0") if path)
        if removals:  # mode 0 removes the entry (--force-remove would want a work tree)
            git.run("update-index", "-z", "--index-info", input=removals)
    tree = git.run("write-tree")
    commit = git.run("commit-tree", tree, "-m", f"{base} without the hold-out")
    git.run("pack-objects", "--quiet", "--revs", str(store / "objects" / "pack" / "pack"), input=f"{commit}\n")
    borrowed.unlink()
    (store / "scratch-index").unlink()
    git.run("prune-packed", "--quiet")  # the new trees and the commit, now in the pack
    git.run("update-ref", _BASE_REF, commit)


def make(folder: Path, shared: SharedBase, branch: str) -> None:
    """A new repository at ``folder`` (which must not exist) on ``branch`` at the shared base, checked out."""
    folder.mkdir(parents=True)
    git = _init(folder, shared, branch)
    git.run("read-tree", "-u", "--reset", branch)


def reset_git(folder: Path, shared: SharedBase, branch: str) -> None:
    """Replace whatever ``folder/.git`` is now by a new repository at the shared base; the files stay.

    After the agent its ``.git`` is hostile (hooks, filters, symlinks in
    place of its index or ``HEAD``): it is never read, only removed (a
    symlink as a link, never followed).  The new index is the base's, so
    ``git status`` there shows the trial's work.
    """
    dot_git = folder / ".git"
    if dot_git.is_dir() and not dot_git.is_symlink():
        treefiles.remove_tree(dot_git)
    elif dot_git.exists() or dot_git.is_symlink():
        dot_git.unlink()
    _init(folder, shared, branch)
    (dot_git / "index").write_bytes(treefiles.index_of(shared.store, shared.commit))


#: What ``git init --template=`` writes as a non-bare repository's configuration (git 2.39 on Linux).
_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n"


def _init(folder: Path, shared: SharedBase, branch: str) -> Git:
    """A new repository at ``folder``, ``branch`` at the shared base: what ``git init`` and ``update-ref`` write.

    Written directly, two git processes a trial fewer: the folder is new
    (``mkdir`` fails if anything is there), so every file in it is the
    plugin's, and its configuration names no filter.  ``branch`` was made
    in the user's repository first, where git checked the name.
    """
    if any(part in ("", ".", "..") for part in branch.split("/")):
        raise ValueError(f"not a branch name: {branch!r}")
    dot_git = folder / ".git"
    dot_git.mkdir()
    for sub in ("objects/info", "objects/pack", "refs/tags", posixpath.dirname(f"refs/heads/{branch}")):
        (dot_git / sub).mkdir(parents=True, exist_ok=True)
    (dot_git / "config").write_text(_CONFIG)
    (dot_git / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    (dot_git / "objects" / "info" / "alternates").write_text(f"{shared.store / 'objects'}\n")
    (dot_git / "refs" / "heads" / branch).write_text(f"{shared.commit}\n")
    return Git(dot_git, work_tree=folder, made_here=True)


def untracked(folder: Path) -> list[str]:
    """Untracked, not ignored paths of a trial's repository, folders collapsed (asked before the agent runs)."""
    git = Git(folder / ".git", work_tree=folder)
    listing = git.run("ls-files", "--others", "--exclude-standard", "--directory", "-z")
    return [path.rstrip("/") for path in listing.split("\0") if path]
