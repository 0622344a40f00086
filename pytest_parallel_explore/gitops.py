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
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import git

#: Commits made for trials carry this identity, so they work on machines without git config.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "pytest-parallel-explore",
    "GIT_AUTHOR_EMAIL": "explore@localhost",
    "GIT_COMMITTER_NAME": "pytest-parallel-explore",
    "GIT_COMMITTER_EMAIL": "explore@localhost",
}


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


def checkout_snapshot(root: Path) -> dict[str, str]:
    """The main checkout's state: HEAD and a digest of every changed or untracked file.

    Two snapshots differ exactly when something changed the checkout between
    them (a commit, an edit, a new or deleted file), which no trial may do.
    """
    repo = open_repo(root)
    state = {"HEAD": repo.head.commit.hexsha if repo.head.is_valid() else ""}
    listing = repo.git.status("--porcelain=v1", "-z", "--untracked-files=all", strip_newline_in_stdout=False)
    entries = [e for e in listing.split("\0") if e]
    for entry in entries:
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
    common = Path(open_repo(root).git.rev_parse("--git-common-dir"))
    if not common.is_absolute():
        common = root / common
    with open(common / "explore.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def exclude_path(root: Path, relative: str) -> None:
    """Add ``relative`` to ``.git/info/exclude`` so the data directory never shows as untracked."""
    with repo_lock(root):
        common = Path(open_repo(root).git.rev_parse("--git-common-dir"))
        exclude = (common if common.is_absolute() else root / common) / "info" / "exclude"
        line = "/" + relative.strip("/") + "/"
        existing = exclude.read_text().splitlines() if exclude.exists() else []
        if line not in existing:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            with exclude.open("a") as f:
                f.write(("\n" if existing and existing[-1] else "") + line + "\n")


def _replace_worktree(root: Path, path: Path, *add: str) -> None:
    """Remove the worktree at ``path`` (if any), forget deleted ones, then ``git worktree add *add``."""
    repo = open_repo(root)
    with repo_lock(root):
        if path.exists():
            with contextlib.suppress(git.GitCommandError):
                repo.git.worktree("remove", "--force", str(path))
        repo.git.worktree("prune")
        if add:
            repo.git.worktree("add", "--quiet", *add)


def add_worktree(root: Path, path: Path, branch: str, base: str) -> None:
    """Create ``path`` as a worktree on a new ``branch`` at ``base``.

    A branch or worktree left by an earlier, unfinished attempt is replaced:
    the trial starts over from ``base``.
    """
    _replace_worktree(root, path, "-B", branch, str(path), base)


def branch_commit(root: Path, branch: str) -> str | None:
    """The sha at the tip of ``branch``, or None when there is no such branch."""
    try:
        return str(open_repo(root).git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}"))
    except git.GitCommandError:
        return None


def restore_worktree(root: Path, path: Path, branch: str, commit: str) -> None:
    """``path`` as a clean worktree of ``branch`` at ``commit``, recreated if it was deleted."""
    if (path / ".git").exists():
        worktree = open_repo(path)
        worktree.git.reset("--hard", "--quiet", commit)
        worktree.git.clean("-fdq")
        return
    _replace_worktree(root, path, str(path), branch)


def add_detached_worktree(root: Path, path: Path, commit: str) -> None:
    """A throw-away worktree at ``commit`` on no branch (for scoring the base itself)."""
    _replace_worktree(root, path, "--detach", str(path), commit)


def untracked(worktree: Path) -> list[str]:
    """Untracked, not ignored paths (whole folders collapsed to one entry)."""
    listing = open_repo(worktree).git.ls_files("--others", "--exclude-standard", "--directory", "-z")
    return [path.rstrip("/") for path in listing.split("\0") if path]


def restore_files(worktree: Path, base: str, paths: Sequence[str]) -> None:
    """Put ``paths`` back as they are at ``base``: checked out if they exist there, else removed."""
    repo = open_repo(worktree)
    existing = set(repo.git.ls_tree("-r", "--name-only", base, "--", *paths).splitlines()) if paths else set()
    if existing:
        repo.git.checkout(base, "--", *sorted(existing))
    for path in paths:
        if path not in existing:
            (worktree / path).unlink(missing_ok=True)


def remove_worktree(root: Path, path: Path) -> None:
    _replace_worktree(root, path)


def prune_worktrees(root: Path) -> None:
    """Forget worktrees whose folders were deleted by hand."""
    with repo_lock(root):
        open_repo(root).git.worktree("prune")


def delete_branches(root: Path, branches: Sequence[str]) -> None:
    repo = open_repo(root)
    existing = {h.name for h in repo.heads}
    doomed = [b for b in branches if b in existing]
    if doomed:
        with repo_lock(root):
            repo.git.branch("-D", *doomed)


def branches_under(root: Path, prefix: str) -> list[str]:
    return sorted(h.name for h in open_repo(root).heads if h.name.startswith(prefix))


def hide_paths(worktree: Path, paths: Sequence[str]) -> None:
    """Remove hold-out paths from a fresh worktree so the agent never sees them.

    ``skip-worktree`` keeps the deletion out of ``git status`` and the trial's commit.
    """
    tracked = open_repo(worktree).git.ls_files("-z", "--", *paths).split("\0") if paths else []
    tracked = [t for t in tracked if t]
    if tracked:
        open_repo(worktree).git.update_index("--skip-worktree", "--", *tracked)
    for relative in paths:
        target = worktree / relative
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


@dataclasses.dataclass(frozen=True)
class Change:
    commit: str
    files: list[str]
    insertions: int
    deletions: int


def commit_all(worktree: Path, message: str, base: str, *, exclude: Sequence[str] = ()) -> Change:
    """Commit everything the agent changed and measure it against ``base``.

    Paths in ``exclude`` (files copied in from the main checkout, such as
    ``.env``) are never committed.  When nothing changed no commit is made
    and the change is empty.
    """
    repo = open_repo(worktree)
    repo.git.add("--all", "--", ".", *(f":(exclude){path}" for path in exclude))
    if repo.is_dirty(index=True, working_tree=False, untracked_files=False):
        repo.git.commit("--quiet", "--no-verify", "-m", message, env=_IDENTITY)
    head = repo.head.commit.hexsha
    files, insertions, deletions = [], 0, 0
    for line in repo.git.diff("--numstat", base, head).splitlines():
        added, removed, name = line.split("\t", 2)
        files.append(name)
        insertions += int(added) if added != "-" else 0
        deletions += int(removed) if removed != "-" else 0
    return Change(head, files, insertions, deletions)


def write_patch(worktree: Path, base: str, head: str, path: Path) -> None:
    """The trial's whole change as a patch file that ``git apply`` accepts."""
    patch = open_repo(worktree).git.diff("--binary", base, head, strip_newline_in_stdout=False)
    path.write_text(patch)


def merge_branch(root: Path, branch: str, *, squash: bool, message: str) -> str:
    """Merge ``branch`` into the current branch of the main checkout; return the new HEAD.

    Refuses on a dirty working tree, and leaves the checkout as it was when
    the merge conflicts.
    """
    repo = open_repo(root)
    if repo.is_dirty(untracked_files=False):
        raise GitProblem(f"{root} has uncommitted changes; commit or stash them before adopting a variant")
    try:
        if squash:
            repo.git.merge("--squash", branch)
            repo.git.commit("--quiet", "--no-verify", "-m", message, env=_identity_for(repo))
        else:
            repo.git.merge("--no-ff", "--no-edit", "-m", message, branch, env=_identity_for(repo))
    except git.GitCommandError as exc:
        with contextlib.suppress(git.GitCommandError):
            repo.git.merge("--abort")
        with contextlib.suppress(git.GitCommandError):
            repo.git.reset("--hard", "--quiet", "HEAD")
        raise GitProblem(f"merging {branch} failed, nothing was changed: {exc.stderr.strip() or exc}") from None
    return repo.head.commit.hexsha


def _identity_for(repo: git.Repo) -> dict[str, str]:
    """The user's own identity when git has one, else the plugin's (so a merge never fails on it)."""
    reader = repo.config_reader()
    if os.environ.get("GIT_COMMITTER_NAME") or (
        reader.has_option("user", "name") and reader.has_option("user", "email")
    ):
        return {}
    return _IDENTITY
