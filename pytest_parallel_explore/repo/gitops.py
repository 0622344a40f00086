"""Every git operation of the plugin, behind intention-revealing functions.

Concurrency lives here and nowhere else: commands that touch the shared
repository's administrative files (worktree add/remove, branch deletion,
``info/exclude``) are serialised across processes with a file lock in the
repository's common git directory, so parallel xdist workers never trip over
git's own ``*.lock`` files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import git

from ..filelimits import DEFAULT_FILE_LIMITS, FileLimits
from . import gitcmd, trees
from .gitcmd import Git

_IDENTITY = gitcmd.IDENTITY


class GitProblem(Exception):
    """The repository cannot be used as asked; the message says why and what to do."""


def open_repo(path: Path) -> git.Repo:
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
    """The top of the main checkout that contains ``path`` (also when run inside a worktree)."""
    repo = open_repo(path)
    return Path(repo.working_tree_dir or path)


def resolve_commit(root: Path, base: str) -> str:
    """The full sha of ``base``; GitProblem when the repo has no commits or ``base`` is unknown."""
    repo = open_repo(root)
    try:
        repo.head.commit  # noqa: B018 -- raises ValueError on an unborn branch
    except ValueError:
        raise GitProblem(
            f"the repository at {root} has no commits yet; commit the project first (variants branch from a commit)"
        ) from None
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", f"{base}^{{commit}}"))
    except git.GitCommandError:
        raise GitProblem(f"{base!r} is not a commit in {root}; expected a branch, tag or sha (see `git log`)") from None


def sealed(root: Path) -> Git:
    """Sealed git on the shared git directory of the repository checked out at ``root``."""
    return Git(_common_dir(root))


@functools.lru_cache(maxsize=8)
def _common_dir(root: Path) -> Path:
    return gitcmd.common_dir(root)


def checkout_snapshot(root: Path) -> dict[str, str]:
    """The main checkout's state: HEAD and a digest of every changed or untracked file.

    Two snapshots differ exactly when something changed the checkout between
    them (a commit, an edit, a new or deleted file), which no trial may do.
    """
    git = sealed(root).with_(work_tree=root)
    state = {"HEAD": git.run("rev-parse", "--verify", "--quiet", "HEAD", check=False)}
    listing = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    for entry in (e for e in listing.split("\0") if e):
        path = entry[3:]
        if "__pycache__/" in path or path.startswith(".pytest_cache/"):
            continue  # written by Python and pytest themselves
        try:
            digest = hashlib.sha1((root / path).read_bytes()).hexdigest()
        except OSError:
            digest = "missing"
        state[path] = f"{entry[:2]} {digest}"
    return state


def snapshot_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The paths (and ``HEAD``) whose state differs between two snapshots."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def is_dirty(root: Path) -> bool:
    """True when tracked files have changes that the base commit does not have."""
    return open_repo(root).is_dirty(untracked_files=False)


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


def _replace_worktree(root: Path, path: Path, *add: str) -> None:
    """Remove the worktree at ``path`` (if any), forget deleted ones, then ``git worktree add *add``."""
    git = sealed(root)
    with repo_lock(root):
        if path.exists():
            git.run("worktree", "remove", "--force", str(path), check=False)
            trees.remove_tree(path)  # not a worktree git knew (its link was broken): the plugin's folder
        git.run("worktree", "prune")
        if add:
            git.run("worktree", "add", "--quiet", *add)


@dataclasses.dataclass(frozen=True)
class Worktree:
    """A trial's worktree, as the plugin made it: the folder, and its admin folder in the shared git dir."""

    path: Path
    admin: Path

    def git(self) -> Git:
        """Sealed git on this worktree, whatever its ``.git`` file says now."""
        return Git(self.admin, work_tree=self.path)


def add_worktree(
    root: Path, path: Path, branch: str, base: str, *, own_files: Sequence[str] = ()
) -> tuple[Worktree, list[str]]:
    """Create ``path`` as a worktree on a new ``branch`` at ``base``; what an earlier attempt left is kept.

    A branch that holds commits other than the plugin's is renamed (see
    :func:`keep_foreign_branch`), a worktree with uncommitted changes (other
    than ``own_files``, the plugin's set-up files) is moved aside: the user's
    data is never lost.  Returns notices about what was kept.
    """
    kept = keep_foreign_branch(root, branch, base)
    kept += keep_dirty_worktree(root, path, own_files)
    _replace_worktree(root, path, "-B", branch, str(path), base)
    return Worktree(path, admin_of(path)), kept


def snapshot_worktree(root: Path, worktree: Worktree, base: str) -> dict[str, trees.Stat]:
    """The stat of every file of ``base`` in a worktree just made, so that reading it back skips what is unchanged."""
    return trees.stat_snapshot(worktree.path, trees.tree_entries(sealed(root), base))


def admin_of(path: Path) -> Path:
    """The admin folder git made for the worktree at ``path`` (read right after the plugin made it)."""
    return Path((path / ".git").read_text().removeprefix("gitdir:").strip())


def branch_commit(root: Path, branch: str) -> str | None:
    """The sha at the tip of ``branch``, or None when there is no such branch."""
    sha = sealed(root).run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return sha or None


def branch_commits(root: Path, prefix: str) -> dict[str, str]:
    """``branch -> sha`` for every branch whose name starts with ``prefix``, in one git call."""
    listing = sealed(root).run("for-each-ref", "--format=%(refname:lstrip=2)%00%(objectname)", f"refs/heads/{prefix}")
    return dict(line.split("\0") for line in listing.splitlines())


def restore_worktree(root: Path, worktree: Worktree, branch: str, commit: str) -> Worktree:
    """The trial's worktree at its committed work (recreated from the branch if it is gone or broken)."""
    if link_problem(worktree) is None and worktree.path.is_dir():
        git = worktree.git()
        git.run("reset", "--hard", "--quiet", commit)
        git.run("clean", "-fdq")
        return worktree
    _replace_worktree(root, worktree.path, str(worktree.path), branch)
    return Worktree(worktree.path, admin_of(worktree.path))


def untracked(worktree: Worktree) -> list[str]:
    """Untracked, not ignored paths (whole folders collapsed to one entry)."""
    listing = worktree.git().run("ls-files", "--others", "--exclude-standard", "--directory", "-z")
    return [path.rstrip("/") for path in listing.split("\0") if path]


def remove_worktree(root: Path, path: Path) -> None:
    _replace_worktree(root, path)


def prune_worktrees(root: Path) -> None:
    """Forget worktrees whose folders were deleted by hand."""
    with repo_lock(root):
        sealed(root).run("worktree", "prune")


def delete_branches(root: Path, branches: Sequence[str]) -> None:
    repo = open_repo(root)
    existing = {h.name for h in repo.heads}
    doomed = [b for b in branches if b in existing]
    if doomed:
        with repo_lock(root):
            sealed(root).run("branch", "-D", *doomed)


def branches_under(root: Path, prefix: str) -> list[str]:
    return sorted(h.name for h in open_repo(root).heads if h.name.startswith(prefix))


def hide_paths(worktree: Worktree, paths: Sequence[str]) -> None:
    """Remove hold-out paths from a fresh worktree so the agent never sees them.

    ``skip-worktree`` keeps the deletion out of the agent's ``git status``;
    the plugin's own record of the work leaves these paths as at the base.
    """
    git = worktree.git()
    tracked = [t for t in git.run("ls-files", "-z", "--", *paths).split("\0") if t] if paths else []
    if tracked:
        git.run("update-index", "--skip-worktree", "--", *tracked)
    for relative in paths:
        target = worktree.path / relative
        if target.is_dir() and not target.is_symlink():
            trees.remove_tree(target)
        else:
            target.unlink(missing_ok=True)


def link_problem(worktree: Worktree) -> str | None:
    """What is wrong with the worktree's link to the repository (``.git`` and its admin folder), if anything."""
    dot_git = worktree.path / ".git"
    if not dot_git.exists() and not dot_git.is_symlink():
        return "its .git file was deleted"
    if dot_git.is_symlink() or not dot_git.is_file():
        return "its .git file was replaced"
    if dot_git.read_text(errors="replace").strip() != f"gitdir: {worktree.admin}":
        return "its .git file was rewritten"
    back = worktree.admin / "gitdir"
    if not back.is_file() or back.read_text(errors="replace").strip() != str(dot_git):
        return "its admin folder's gitdir was rewritten"
    commondir = worktree.admin / "commondir"
    if not commondir.is_file() or commondir.read_text(errors="replace").strip() != "../..":
        return "its admin folder's commondir was rewritten"
    return None


def repair_link(worktree: Worktree) -> None:
    """Point the worktree and its admin folder at each other again, as ``git worktree add`` made them."""
    dot_git = worktree.path / ".git"
    if dot_git.is_dir() and not dot_git.is_symlink():
        trees.remove_tree(dot_git)
    else:
        dot_git.unlink(missing_ok=True)
    dot_git.write_text(f"gitdir: {worktree.admin}\n")
    (worktree.admin / "gitdir").write_text(f"{dot_git}\n")
    (worktree.admin / "commondir").write_text("../..\n")


@dataclasses.dataclass(frozen=True)
class Change:
    commit: str
    files: list[str]
    insertions: int
    deletions: int
    left_out: list[str] = dataclasses.field(default_factory=list)  # see trees.FilesTree


def record_work(
    root: Path,
    worktree: Worktree,
    branch: str,
    base: str,
    message: str,
    *,
    leave: Sequence[str] = (),
    skip: Sequence[str] = (),
    unchanged: Mapping[str, trees.Stat] | None = None,
    limits: FileLimits = DEFAULT_FILE_LIMITS,
) -> Change:
    """Commit what the worktree's files hold on ``branch``, whatever the agent did to git.

    The tree is built from the files (see :func:`trees.tree_of_files`); the
    commit's parent is ``base``; ``branch`` is set to it, and the worktree's
    own ``HEAD`` and index are pointed at it, wherever the agent moved them.
    When nothing changed, the branch stays at ``base``.  ``unchanged``: see
    :func:`snapshot_worktree`.  Files past ``limits`` raise
    :class:`trees.LimitExceeded` before anything is written.
    """
    git = sealed(root).with_(work_tree=worktree.path)
    files = trees.tree_of_files(git, base, leave=leave, skip=skip, unchanged=unchanged, limits=limits)
    tree = files.tree
    changed = tree != trees.tree_id(git, base)
    commit = git.run("commit-tree", tree, "-p", base, "-m", message) if changed else base
    set_branch(root, branch, commit)
    admin = Git(worktree.admin)
    admin.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")
    admin.with_(index=worktree.admin / "index").run("read-tree", commit)
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


def keep_dirty_worktree(root: Path, path: Path, own_files: Sequence[str]) -> list[str]:
    """Move a worktree with uncommitted changes aside (``<experiment>/kept/``) instead of discarding it."""
    if not (path / ".git").is_file():
        return []
    try:
        worktree = Worktree(path, admin_of(path))
        status = worktree.git().run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    except (OSError, gitcmd.GitFailed):
        return []
    changed = [e[3:] for e in status.split("\0") if len(e) > 3 and not trees.under(e[3:], own_files)]
    if not changed:
        return []
    kept = path.parent.parent / "kept" / f"{path.name}-{int(time.time())}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    with repo_lock(root):
        sealed(root).run("worktree", "move", str(path), str(kept))
        # Detached, so the trial's branch is free for its new worktree.
        head = Git(worktree.admin).run("rev-parse", "HEAD")
        Git(worktree.admin).run("update-ref", "--no-deref", "HEAD", head)
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
    listing = open_repo(root).git.ls_files("-z", "--", *specs)
    tracked = [entry for entry in listing.split("\0") if entry]
    return [t for t in tracked if t == relative or t.startswith(relative + "/") or t in parents]
