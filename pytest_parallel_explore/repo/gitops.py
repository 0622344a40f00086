"""Every git operation of the plugin on the user's repository, behind intention-revealing functions.

A trial's own repository, where its agent works, is :mod:`.private`'s; this
module only reads that folder's files.  Concurrency lives here and nowhere
else: commands that touch the shared repository's administrative files
(branch updates and deletion, the removal of linked worktrees made by
earlier versions, ``info/exclude``) are serialised across processes with a file lock in the
repository's common git directory, so parallel xdist workers never trip over
git's own ``*.lock`` files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.limits import DEFAULT_LIMITS, Limits
from . import gitcmd, private, treefiles, trees, worktreestat
from .gitcmd import Git

if TYPE_CHECKING:
    import git

_IDENTITY = gitcmd.IDENTITY


class GitProblem(Exception):
    """The repository cannot be used as asked; the message says why and what to do."""


def open_repo(path: Path) -> git.Repo:
    import git  # GitPython costs every process ~45 ms to import: only the commands that need it load it

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitProblem(
            f"{path} is not inside a git repository; run `git init` and commit the project first"
        ) from None
    if repo.bare or repo.working_tree_dir is None:
        raise GitProblem(f"{path} is a bare git repository; run from a checkout")
    return repo


def repo_root(path: Path) -> Path:
    """The top of the checkout that contains ``path`` (asked in every process: plain git, as the user runs it)."""
    top = _rev_parse(path, "--show-toplevel")
    if top is None:
        if _rev_parse(path, "--is-bare-repository") == "true":
            raise GitProblem(f"{path} is a bare git repository; run from a checkout")
        raise GitProblem(f"{path} is not inside a git repository; run `git init` and commit the project first")
    return Path(top)


def resolve_commit(root: Path, base: str) -> str:
    """The full sha of ``base``; GitProblem when the repo has no commits or ``base`` is unknown."""
    if _rev_parse(root, "--verify", "--quiet", "HEAD^{commit}") is None:
        raise GitProblem(
            f"the repository at {root} has no commits yet; commit the project first (variants branch from a commit)"
        )
    commit = _rev_parse(root, "--verify", "--quiet", "--end-of-options", f"{base}^{{commit}}")
    if commit is None:
        raise GitProblem(f"{base!r} is not a commit in {root}; expected a branch, tag or sha (see `git log`)")
    return commit


def _rev_parse(path: Path, *args: str) -> str | None:
    return None if (output := _as_user(path, "rev-parse", *args)) is None else output.strip()


def _as_user(path: Path, *args: str) -> str | None:
    """``git ARGS`` in ``path`` with the user's own environment and configuration; None when it fails."""
    if not path.is_dir():
        return None
    finished = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=False)
    return finished.stdout if finished.returncode == 0 else None


def sealed(root: Path) -> Git:
    """Sealed git on the shared git directory of the repository checked out at ``root``."""
    return Git(_common_dir(root))


@functools.lru_cache(maxsize=8)
def _common_dir(root: Path) -> Path:
    return gitcmd.common_dir(root)


def is_dirty(root: Path) -> bool:
    """True when tracked files (staged or not) differ from ``HEAD``: ``git diff --quiet HEAD``, run as the user."""
    finished = subprocess.run(
        ["git", "diff", "--quiet", "--no-ext-diff", "--no-textconv", "HEAD", "--"], cwd=root, capture_output=True
    )
    if finished.returncode > 1:
        raise GitProblem(f"git diff failed in {root}: {finished.stderr.decode(errors='replace').strip()}")
    return finished.returncode == 1


@contextlib.contextmanager
def repo_lock(root: Path) -> Iterator[None]:
    """Hold the plugin's lock on the repository's shared git administrative files."""
    with open(_common_dir(root) / "explore.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def exclude_path(root: Path, relative: str) -> None:
    """Add ``relative`` to ``.git/info/exclude`` so the data directory never shows as untracked."""
    with repo_lock(root):
        exclude = _common_dir(root) / "info" / "exclude"
        line = "/" + relative.strip("/") + "/"
        existing = exclude.read_text().splitlines() if exclude.exists() else []
        if line not in existing:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            with exclude.open("a") as f:
                f.write(("\n" if existing and existing[-1] else "") + line + "\n")


def remove_trial_folder(root: Path, path: Path) -> None:
    """Remove a trial's folder; one left by an earlier version as a linked worktree is also forgotten by git."""
    if (path / ".git").is_file() and not (path / ".git").is_symlink():
        with repo_lock(root):
            git = sealed(root)
            git.run("worktree", "remove", "--force", str(path), check=False)
            treefiles.remove_tree(path)
            git.run("worktree", "prune")
    elif path.is_symlink():
        path.unlink()
    else:
        treefiles.remove_tree(path)


def add_worktree(
    root: Path,
    path: Path,
    branch: str,
    shared: private.SharedBase,
    base: str,
    *,
    reference: str,
    own_files: Sequence[str] = (),
) -> list[str]:
    """Make ``path`` the trial's private repository at ``shared``, ``branch`` at ``base``; keep what was there.

    A branch that holds commits other than the plugin's is renamed (see
    :func:`keep_foreign_branch`); a folder whose files differ from
    ``reference`` (the trial's last recorded commit, or the base) other than
    in ``own_files`` (the plugin's hold-out and set-up files) is moved aside
    (see :func:`keep_changed_folder`): the user's data is never lost.
    Returns notices about what was kept.
    """
    created = _new_branch(root, branch, base)
    kept = [] if created else keep_foreign_branch(root, branch, base)
    kept += keep_changed_folder(root, path, reference, own_files)
    remove_trial_folder(root, path)
    if not created:
        set_branch(root, branch, base)
    private.make(path, shared, branch)
    return kept


def _new_branch(root: Path, branch: str, commit: str) -> bool:
    """Make ``branch`` at ``commit`` if there is no such branch yet (one git process); whether it was made."""
    with repo_lock(root):
        return sealed(root).ok("update-ref", f"refs/heads/{branch}", commit, "0" * len(commit))


def snapshot_worktree(root: Path, path: Path, base: str) -> dict[str, worktreestat.Stat]:
    """The stat of every file of ``base`` in a worktree just made, so that reading it back skips what is unchanged.

    Read from the index the checkout wrote (see :func:`worktreestat.index_snapshot`), else from each file.
    """
    snapshot = worktreestat.index_snapshot(path, len(base))
    if snapshot is None:
        snapshot = worktreestat.stat_snapshot(path, treefiles.tree_entries(sealed(root), base))
    return snapshot


def branch_commit(root: Path, branch: str) -> str | None:
    """The sha at the tip of ``branch``, or None when there is no such branch."""
    sha = sealed(root).run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return sha or None


def branch_commits(root: Path, prefix: str) -> dict[str, str]:
    """``branch -> sha`` for every branch whose name starts with ``prefix``, in one git call."""
    listing = sealed(root).run("for-each-ref", "--format=%(refname:lstrip=2)%00%(objectname)", f"refs/heads/{prefix}")
    return dict(line.split("\0") for line in listing.splitlines())


def restore_worktree(
    root: Path, path: Path, shared: private.SharedBase, branch: str, commit: str, holdout: Sequence[str]
) -> None:
    """The trial's folder rebuilt at its committed work: ``commit``'s files, a new private repository at the base.

    Written from the user's repository (see :func:`treefiles.materialize`), never
    from what is in the folder now; the hold-out paths, which ``commit``
    holds as at the base, are taken out again before anyone works there.
    """
    remove_trial_folder(root, path)
    treefiles.materialize(sealed(root), commit, path)
    for relative in holdout:
        target = path / relative
        if target.is_dir() and not target.is_symlink():
            treefiles.remove_tree(target)
        else:
            target.unlink(missing_ok=True)
    private.reset_git(path, shared, branch)


def prune_worktrees(root: Path) -> None:
    """Forget worktrees whose folders were deleted by hand."""
    with repo_lock(root):
        sealed(root).run("worktree", "prune")


def delete_branches(root: Path, branches: Sequence[str]) -> None:
    existing = {h.name for h in open_repo(root).heads}
    if doomed := [b for b in branches if b in existing]:
        with repo_lock(root):
            sealed(root).run("branch", "-D", *doomed)


def branches_under(root: Path, prefix: str) -> list[str]:
    return sorted(h.name for h in open_repo(root).heads if h.name.startswith(prefix))


@dataclasses.dataclass(frozen=True)
class Change:
    commit: str
    files: list[str]
    insertions: int
    deletions: int
    left_out: list[str] = dataclasses.field(default_factory=list)  # see trees.FilesTree


def record_work(
    root: Path,
    worktree: Path,
    branch: str,
    base: str,
    message: str,
    *,
    leave: Sequence[str] = (),
    skip: Sequence[str] = (),
    unchanged: Mapping[str, worktreestat.Stat] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Change:
    """Commit what the worktree's files hold on ``branch`` in the user's repository, whatever the agent did to git.

    The tree is built from the files only (see :func:`trees.tree_of_files`;
    the folder's own ``.git`` is never read); the commit's parent is
    ``base``; ``branch`` is set to it.  When nothing changed, the branch
    stays at ``base``.  ``unchanged``: see :func:`snapshot_worktree`.  Files
    past ``limits`` raise :class:`trees.LimitExceeded` before anything is written.
    """
    git = sealed(root).with_(work_tree=worktree)
    files = trees.tree_of_files(git, base, message=message, leave=leave, skip=skip, unchanged=unchanged, limits=limits)
    tree, commit = files.tree, files.commit or base
    treefiles.note_tree(git, tree, tree)
    treefiles.note_tree(git, commit, tree)
    set_branch(root, branch, commit)
    names, insertions, deletions = [], 0, 0
    numstat = git.run("diff", "--numstat", "-z", "--no-renames", "--no-ext-diff", "--no-textconv", base, commit)
    for line in filter(None, numstat.split("\0")):
        added, removed, name = line.split("\t", 2)
        names.append(name)
        insertions += int(added) if added != "-" else 0
        deletions += int(removed) if removed != "-" else 0
    return Change(commit, names, insertions, deletions, files.left_out)


def set_branch(root: Path, branch: str, commit: str) -> None:
    """Point ``branch`` at ``commit`` (the plugin's own branches only)."""
    with repo_lock(root):
        sealed(root).run("update-ref", f"refs/heads/{branch}", commit)


def write_patch(root: Path, base: str, head: str, path: Path) -> None:
    """The trial's whole change as a patch file that ``git apply`` accepts."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # a new file, not a planted one
    os.close(fd)
    try:
        # Written by git as it goes: the patch of an agent's work can be far bigger than memory should hold.
        sealed(root).run("diff", "--binary", "--no-ext-diff", "--no-textconv", f"--output={temporary}", base, head)
        os.replace(temporary, path)  # a symlink planted at ``path`` is replaced, never written through
    finally:
        Path(temporary).unlink(missing_ok=True)


def keep_foreign_branch(root: Path, branch: str, base: str) -> list[str]:
    """Keep ``branch``'s tip as ``<branch>.kept-<time>`` when it holds commits the plugin did not make."""
    git = sealed(root)
    tip = branch_commit(root, branch)
    if tip is None:
        return []
    committers = git.run("log", "--format=%ce", tip, "--not", base, check=False).split()
    if all(c == gitcmd.IDENTITY["GIT_COMMITTER_EMAIL"] for c in committers):
        return []
    kept = f"{branch}.kept-{int(time.time())}"  # still under the experiment's own prefix
    with repo_lock(root):
        git.run("update-ref", f"refs/heads/{kept}", tip)
    return [f"{branch} holds commits the plugin did not make; kept as {kept}"]


def keep_changed_folder(root: Path, path: Path, reference: str, own_files: Sequence[str]) -> list[str]:
    """Move a trial folder whose files differ from ``reference`` aside (``<experiment>/kept/``), never discard it.

    The files are compared (as :func:`record_work` reads them) with
    ``reference`` in the user's repository; ``own_files`` (the plugin's
    hold-out and set-up files) do not count.  The folder's ``.git`` is not
    asked: it may be the agent's.  When the comparison fails (``reference``
    is gone), the folder is kept too.
    """
    if not path.is_dir() or path.is_symlink():
        return []
    git = sealed(root).with_(work_tree=path)
    try:
        tree = trees.tree_of_files(git, reference, leave=own_files).tree
        listing = git.run("diff-tree", "-r", "-z", "--name-only", "--no-renames", reference, tree)
        changed = [p for p in listing.split("\0") if p]
    except (gitcmd.GitFailed, trees.LimitExceeded) as exc:
        changed = [f"could not compare with {reference[:12]}: {exc}"]
    if not changed:
        return []
    (path.parent.parent / "kept").mkdir(parents=True, exist_ok=True)
    # A new name each time (two reruns in one second); renaming onto an empty folder replaces it.
    kept = Path(tempfile.mkdtemp(prefix=f"{path.name}-{int(time.time())}-", dir=path.parent.parent / "kept"))
    os.rename(path, kept)
    return [f"{path} had uncommitted changes ({', '.join(changed[:3])}); moved to {kept}"]


@dataclasses.dataclass(frozen=True)
class WorktreeEntry:
    """One worktree as ``git worktree list --porcelain`` describes it."""

    path: Path
    branch: str | None  # short name (``explore/calc/good``); None when detached
    locked: bool
    prunable: bool  # its folder is gone


def list_worktrees(root: Path) -> list[WorktreeEntry]:
    """Every worktree git knows of in the repository of ``root`` (the main checkout first)."""
    listing = open_repo(root).git.worktree("list", "--porcelain", "-z", strip_newline_in_stdout=False)
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    # -z: every attribute ends with NUL and every record with one more.
    for line in [*listing.split("\0"), ""]:
        if line:
            key, _, value = line.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            branch = fields.get("branch")
            entries.append(
                WorktreeEntry(
                    path=Path(fields["worktree"]),
                    branch=branch.removeprefix("refs/heads/") if branch else None,
                    locked="locked" in fields,
                    prunable="prunable" in fields,
                )
            )
        fields = {}
    return entries


def tracked_at(root: Path, relative: str) -> list[str]:
    """Tracked files at or under ``relative``, or a tracked file that is one of its parent folders."""
    parts = Path(relative).parts
    parents = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
    specs = [f":(literal){relative}", *(f":(literal){p}" for p in parents)]
    listing = _as_user(root, "ls-files", "-z", "--", *specs)
    if listing is None:
        raise GitProblem(f"git ls-files failed in {root}")
    tracked = [entry for entry in listing.split("\0") if entry]
    return [t for t in tracked if t == relative or t.startswith(relative + "/") or t in parents]
