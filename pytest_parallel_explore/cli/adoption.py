"""Adopting a trial: merging its branch into the user's current branch, refusing whatever would lose work.

This runs in the user's own checkout, at the user's request, after the
trials: the user's git (hooks, identity) is used, not the sealed one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import git

from ..repo.gitops import _IDENTITY, GitProblem, open_repo


def merge_branch(root: Path, branch: str, *, squash: bool, message: str) -> str:
    """Merge ``branch`` into the current branch of the main checkout; return the new HEAD.

    Refuses, before anything changes, on a dirty working tree and when the
    merge would write a path that exists untracked or ignored in the checkout
    (git itself overwrites ignored files silently).  Leaves the checkout as it
    was when the merge conflicts.  Afterwards checks that HEAD really moved:
    to a new commit that contains ``branch`` (a merge), or whose only parent
    is the old HEAD and whose tree is the merge's result (a squash).
    """
    repo = open_repo(root)
    if repo.is_dirty(untracked_files=False):
        raise GitProblem(f"{root} has uncommitted changes; commit or stash them before adopting a variant")
    old_head = repo.head.commit.hexsha
    tip = str(repo.git.rev_parse("--verify", f"{branch}^{{commit}}"))
    if _is_ancestor(repo, tip, old_head):
        raise GitProblem(f"{branch} is already merged into HEAD ({old_head[:12]}); nothing to adopt")
    in_the_way = untracked_in_the_way(root, changed_paths(root, old_head, tip))
    if in_the_way:
        raise GitProblem(
            f"merging {branch} would overwrite untracked or ignored files in {root}: {', '.join(in_the_way)}; "
            "move or delete them first; nothing was changed"
        )
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
    new_head = repo.head.commit.hexsha
    problem = _merge_problem(repo, old_head, new_head, tip, squash=squash)
    if problem:
        raise GitProblem(f"merging {branch} did not adopt it: {problem} (HEAD was {old_head[:12]})")
    return new_head


def _identity_for(repo: git.Repo) -> dict[str, str]:
    """The user's own identity when git has one, else the plugin's (so a merge never fails on it)."""
    reader = repo.config_reader()
    if os.environ.get("GIT_COMMITTER_NAME") or (
        reader.has_option("user", "name") and reader.has_option("user", "email")
    ):
        return {}
    return _IDENTITY


def changed_paths(root: Path, base: str, commit: str) -> list[str]:
    """The paths ``commit`` adds, changes or deletes relative to its merge base with ``base``."""
    repo = open_repo(root)
    merge_base = str(repo.git.merge_base(base, commit))
    listing = repo.git.diff("--name-only", "--no-renames", "-z", merge_base, commit, strip_newline_in_stdout=False)
    return [path for path in listing.split("\0") if path]


def untracked_in_the_way(root: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` (or their parent folders) that exist in the checkout but git does not track.

    That covers untracked and ignored files alike: a checkout that writes
    ``paths`` would replace them.
    """
    if not paths:
        return []
    candidates: dict[str, str] = {}  # what exists on disk untracked -> the path it is in the way of
    for path in paths:
        parts = Path(path).parts
        for depth in range(1, len(parts) + 1):
            relative = "/".join(parts[:depth])
            target = root / relative
            last = depth == len(parts)
            # A parent folder is in the way only when it is not a real folder (a file or a symlink).
            if target.is_symlink() or (target.exists() and (last or not target.is_dir())):
                candidates.setdefault(relative, path)
    if not candidates:
        return []
    listing = open_repo(root).git.ls_files("-z", "--", *(f":(literal){c}" for c in candidates))
    tracked = {entry for entry in listing.split("\0") if entry}
    return sorted(c for c in candidates if c not in tracked and not any(t.startswith(c + "/") for t in tracked))


def _is_ancestor(repo: git.Repo, ancestor: str, commit: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, commit)
    except git.GitCommandError:
        return False
    return True


def _merge_problem(repo: git.Repo, old_head: str, new_head: str, tip: str, *, squash: bool) -> str | None:
    """Why HEAD after merging ``tip`` is not what the merge should have made, or None when it is."""
    if new_head == old_head:
        return "HEAD did not move"
    parents = repo.git.rev_list("--parents", "-n", "1", new_head).split()[1:]
    if not squash:
        if not _is_ancestor(repo, tip, new_head) or old_head not in parents:
            return f"HEAD ({new_head[:12]}) is not a merge of the old HEAD and {tip[:12]}"
        return None
    expected = repo.git.merge_tree("--write-tree", old_head, tip).splitlines()[0]
    if parents != [old_head] or repo.git.rev_parse(f"{new_head}^{{tree}}") != expected:
        return f"HEAD ({new_head[:12]}) is not one commit on the old HEAD with the merged tree"
    return None
