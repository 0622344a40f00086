"""Preparing folders for work: a trial's worktree, and the sealed checkout its score is measured in.

A worktree gets what git does not give it: ``worktree.copy`` files from the
main checkout and the ``worktree.setup`` command.  A scoring checkout is a
fresh folder outside the repository, written by the plugin from a tree (see
:func:`trees.materialize`), with the hold-out tests copied in: the agent
never had it, so nothing it left behind (a planted ``.git``, an index trick,
a process still writing) can reach what is scored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..isolation import confinement
from ..isolation.procs import run_owned
from ..isolation.sandbox import Sandbox
from ..repo import trees
from ..repo.gitcmd import Git
from ..settings import Settings
from .suite import scoring_env


def prepare_worktree(
    settings: Settings, worktree: Path, name: str, *, holdout: bool = False, sandbox: Sandbox | None = None
) -> None:
    """What a folder to work or score in needs besides git's files: ``worktree.copy``, ``worktree.setup``, hold-out."""
    root = settings.workspace.repo_root
    for relative in settings.worktree.copy:
        _copy(root / relative, worktree / relative)
    run_setup_command(settings, worktree, name, settings.worktree.setup, "worktree.setup", sandbox=sandbox)
    if holdout:
        copy_holdout(settings, worktree)


@dataclasses.dataclass(frozen=True)
class Scoring:
    """A sealed scoring checkout, the folder beside it for reports, and the sandbox its commands run in."""

    checkout: Path
    out: Path
    sandbox: Sandbox


@contextlib.contextmanager
def scoring_checkout(settings: Settings, git: Git, tree: str, name: str) -> Iterator[Scoring]:
    """``tree`` written to a new folder, prepared, hold-out copied in; removed afterwards.

    ``out`` is a sibling folder for reports the suite writes (its junit
    file).  Both live outside the repository, so no configuration of the
    main checkout (a ``pytest.ini`` above the folder) takes part in scoring.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"explore-{settings.experiment}-{name}-"))
    try:
        scoring = Scoring(
            folder / "checkout", folder / "out", confinement.for_scoring(settings, folder, git.git_dir, name)
        )
        scoring.out.mkdir()
        trees.materialize(git, tree, scoring.checkout)
        prepare_worktree(settings, scoring.checkout, name, holdout=True, sandbox=scoring.sandbox)
        yield scoring
    finally:
        trees.remove_tree(folder)


def copy_holdout(settings: Settings, worktree: Path) -> None:
    """Copy the hold-out tests from the main checkout, replacing whatever is at their paths."""
    root = settings.workspace.repo_root
    for relative in settings.score.holdout:
        target = worktree / relative
        if target.is_dir() and not target.is_symlink():
            trees.remove_tree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        _copy(root / relative, target)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def run_setup_command(
    settings: Settings, worktree: Path, name: str, command: str | None, key: str, *, sandbox: Sandbox | None = None
) -> None:
    """Run a set-up command in the worktree (output in ``<name>_setup.log``); raise when it fails."""
    if not command:
        return
    finished = run_owned(
        command,
        cwd=worktree,
        env=scoring_env(settings, worktree, name),
        timeout=settings.score.timeout,
        output=settings.paths.trial_file(name, "_setup.log"),
        sandbox=sandbox,
    )
    if finished.limit is not None:
        raise RuntimeError(f"{key} failed (limit: {finished.limit}; see {name}_setup.log): {command}")
    if finished.returncode != 0:
        raise RuntimeError(f"{key} failed (exit {finished.returncode}; see {name}_setup.log): {command}")
