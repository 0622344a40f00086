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
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import trees
from .gitcmd import Git
from .procs import run_owned
from .settings import Settings
from .suite import scoring_env


def prepare_worktree(settings: Settings, worktree: Path, name: str, *, holdout: bool = False) -> None:
    """What a folder to work or score in needs besides git's files: ``worktree.copy``, ``worktree.setup``, hold-out."""
    root = settings.workspace.repo_root
    for relative in settings.spec.worktree.copy:
        _copy(root / relative, worktree / relative)
    run_setup_command(settings, worktree, name, settings.spec.worktree.setup, "worktree.setup")
    if holdout:
        copy_holdout(settings, worktree)


@contextlib.contextmanager
def scoring_checkout(settings: Settings, git: Git, tree: str, name: str) -> Iterator[tuple[Path, Path]]:
    """``(checkout, out)``: ``tree`` written to a new folder, prepared, hold-out copied in; removed afterwards.

    ``out`` is a sibling folder for reports the suite writes (its junit
    file).  Both live outside the repository, so no configuration of the
    main checkout (a ``pytest.ini`` above the folder) takes part in scoring.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"explore-{settings.experiment}-{name}-"))
    try:
        checkout, out = folder / "checkout", folder / "out"
        out.mkdir()
        trees.materialize(git, tree, checkout)
        prepare_worktree(settings, checkout, name, holdout=True)
        yield checkout, out
    finally:
        trees.remove_tree(folder)


def copy_holdout(settings: Settings, worktree: Path) -> None:
    """Copy the hold-out tests from the main checkout, replacing whatever is at their paths."""
    root = settings.workspace.repo_root
    for relative in settings.spec.score.holdout:
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


def run_setup_command(settings: Settings, worktree: Path, name: str, command: str | None, key: str) -> None:
    """Run a set-up command in the worktree (output in ``<name>_setup.log``); raise when it fails."""
    if not command:
        return
    finished = run_owned(
        command,
        cwd=worktree,
        env=scoring_env(settings, worktree, name),
        timeout=settings.score_timeout,
        output=settings.paths.trial_file(name, "_setup.log"),
    )
    if finished.returncode != 0:
        raise RuntimeError(f"{key} failed (exit {finished.returncode}; see {name}_setup.log): {command}")
