"""Preparing folders for work: a trial's worktree, and the sealed checkout its score is measured in.

A worktree gets what git does not give it: ``worktree.copy`` files from the
main checkout and the ``worktree.setup`` command.  A scoring checkout is a
folder outside the repository, written by the plugin from a tree (see
:mod:`..repo.pristine`: kept between suite runs, brought to the next tree by
writing what differs), with the hold-out tests copied in: the agent never had
it, so nothing it left behind (a planted ``.git``, an index trick, a process
still writing) can reach what is scored.  The hold-out is read
once, when the run starts (:func:`keep_holdout`), into the experiment's
private store: what an agent later writes in the main checkout's hold-out
changes no score.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..isolation import confinement
from ..isolation.procs import run_owned
from ..isolation.sandbox import Sandbox
from ..model.settings import ScoringSpec, ScoringSubject
from ..repo import blobs, treefiles, trees
from ..repo.gitcmd import Git
from ..repo.pristine import PristineCheckout
from ..repo.store import KeptFiles, keep_files
from .protect import decides_outcome
from .suite import scoring_env

_log = logging.getLogger(__name__)


def prepare_worktree(
    spec: ScoringSpec, subject: ScoringSubject, worktree: Path, *, sandbox: Sandbox | None = None
) -> None:
    """What a folder to work or score in needs besides git's files: ``worktree.copy`` and ``worktree.setup``."""
    root = spec.workspace.repo_root
    for relative in spec.worktree.copy:
        _copy(root / relative, worktree, relative)
    run_setup_command(spec, subject, worktree, spec.worktree.setup, "worktree.setup", sandbox=sandbox)


@dataclasses.dataclass(frozen=True)
class Scoring:
    """A sealed scoring checkout, the folder beside it for reports, and the sandbox its commands run in."""

    checkout: Path
    out: Path
    sandbox: Sandbox
    kept: PristineCheckout
    holdout: tuple[str, ...]

    def altered(self) -> list[str]:
        """The tests, conftests and hold-out files the commands run here changed, and the conftests they planted.

        The code under test runs in the suite's process and could rewrite a
        test before pytest collects it; its ctime tells, whatever it put back.
        """
        return self.kept.altered(lambda path: decides_outcome(path, self.holdout), "conftest.py")


#: Scoring checkouts of this process between suite runs, by repository: the next run takes one.
_idle: dict[Path, list[PristineCheckout]] = {}
_idle_lock = threading.Lock()


@contextlib.contextmanager
def scoring_checkout(
    spec: ScoringSpec, subject: ScoringSubject, git: Git, tree: str, holdout: KeptFiles | None
) -> Iterator[Scoring]:
    """``tree`` written to a folder of its own, prepared, hold-out (read when the run started) copied in.

    The folder is this process's kept checkout of an earlier tree, brought to
    ``tree`` by writing what differs and removing all the earlier suite left
    (see :mod:`..repo.pristine`), or a new one.  ``out`` is a sibling folder
    for reports the suite writes (its junit file).  Both live outside the
    repository, so no configuration of the main checkout (a ``pytest.ini``
    above the folder) takes part in scoring.  A checkout whose use raised is
    removed, not kept, and so is every one under ``worktree.keep: none``.
    """
    if holdout is None and spec.score.holdout:
        raise RuntimeError("the hold-out tests were not read when the run started; nothing is scored without them")
    entries = treefiles.tree_entries(git, tree, near=spec.base_commit)
    if spec.score.holdout:
        entries = {p: e for p, e in entries.items() if not trees.under(p, spec.score.holdout)}
    kept = _take(git)
    try:
        try:
            _bring(kept, git, entries)
        except OSError:  # what the last suite left cannot be removed (a file it made immutable, as root)
            _discard(kept.folder.parent)
            kept = _take(None)
            _bring(kept, git, entries)
        folder = kept.folder.parent
        sandbox = _sandbox(spec, subject, folder, git)
        scoring = Scoring(kept.folder, folder / "out", sandbox, kept, tuple(spec.score.holdout))
        prepare_worktree(spec, subject, scoring.checkout, sandbox=scoring.sandbox)
        if holdout is not None:  # after the set-up command, which runs the agent's code
            kept.overlay(Git(Path(holdout.store)), holdout.entries, spec.score.holdout)
        yield scoring
    except BaseException:
        _discard(kept.folder.parent)
        raise
    if spec.worktree.keep == "none":  # disk over CPU: a trial has one checkout at a time, never two
        _discard(folder)
        return
    with _idle_lock:
        _idle.setdefault(git.git_dir, []).append(kept)


def _take(git: Git | None) -> PristineCheckout:
    """A kept checkout of ``git``'s trees that no suite run is using, or (``None``: always) a new one."""
    with _idle_lock:
        if git is not None and _idle.get(git.git_dir):
            return _idle[git.git_dir].pop()
    folder = Path(tempfile.mkdtemp(prefix="explore-scoring-"))
    return PristineCheckout(folder / "checkout")


def _bring(kept: PristineCheckout, git: Git, entries: dict[str, tuple[str, str]]) -> None:
    """``kept`` at ``entries``, with nothing beside it but an empty folder for the reports."""
    folder = kept.folder.parent
    for left in os.listdir(folder):  # whatever the last suite put beside the checkout (a conftest.py, a link)
        if left != kept.folder.name:
            treefiles.remove_tree(folder / left)
    treefiles.drop_default_acl(folder)  # or a new checkout, and the reports' folder, would inherit it
    (folder / "out").mkdir()
    kept.update([(git, entries)])


def _discard(folder: Path) -> None:
    """Remove a scoring folder as far as it goes; what cannot be removed stays where it is, said in the log."""
    try:
        treefiles.remove_tree(folder)
    except OSError as exc:
        _log.warning("a scoring checkout could not be removed and is left as it is: %s (%s)", folder, exc)


@atexit.register
def _remove_kept() -> None:
    with _idle_lock:
        for kept in [k for ks in _idle.values() for k in ks]:
            treefiles.remove_tree(kept.folder.parent)
        _idle.clear()


def _sandbox(spec: ScoringSpec, subject: ScoringSubject, folder: Path, git: Git) -> Sandbox:
    """What the commands run in ``folder`` may do: the experiment's sandbox, ``subject``'s limits."""
    return confinement.for_scoring(
        spec.sandbox,
        subject.limits,
        (spec.score.command, spec.score.setup, spec.worktree.setup),
        folder=folder,
        hidden=confinement.hidden_paths(spec.workspace, git.git_dir, spec.score.holdout),
        repo_root=spec.workspace.repo_root,
    )


def keep_holdout(spec: ScoringSpec, git: Git, store: Git) -> KeptFiles:
    """The hold-out tests as they are now, kept in ``store``: from the base commit where it tracks them, else from disk.

    Called once, when the run starts, before any agent runs: scoring (of the
    trials and of the baseline, in every process) writes this copy.
    """
    root = spec.workspace.repo_root
    holdout = spec.score.holdout
    tracked = {p: e for p, e in treefiles.tree_entries(git, spec.base_commit).items() if trees.under(p, holdout)}
    on_disk = [p for p in _files_under(root, holdout) if p not in tracked]
    entries = dict(keep_files(store, root, on_disk))
    if tracked:
        with tempfile.TemporaryDirectory(prefix="explore-holdout-") as scratch:
            blobs.write_files(git, tracked, Path(scratch))
            entries.update(
                keep_files(store, Path(scratch), [p for p, (mode, _) in tracked.items() if mode != "120000"])
            )
    return KeptFiles(str(store.git_dir), entries)


def _files_under(root: Path, relatives: Sequence[str]) -> list[str]:
    """Every file at or under ``relatives`` (links to files included, links to folders not followed)."""
    found = []
    for relative in relatives:
        top = root / relative
        if top.is_file():
            found.append(relative)
        for folder, _dirs, names in os.walk(top):
            found.extend(Path(folder, n).relative_to(root).as_posix() for n in names if Path(folder, n).is_file())
    return found


def _copy(source: Path, worktree: Path, relative: str) -> None:
    """The user's ``source`` (a file, or a folder's files) at ``relative`` in ``worktree``, over what is there.

    The tree may be an agent's: a link it committed at or above a file
    copied is removed, never written through.
    """
    if source.is_dir():
        for folder, _folders, names in os.walk(source):
            inside = Path(folder).relative_to(source).as_posix()
            for name in names:
                _copy_file(Path(folder, name), worktree, posixpath.normpath(f"{relative}/{inside}/{name}"))
    elif source.is_file():
        _copy_file(source, worktree, relative)


def _copy_file(source: Path, worktree: Path, relative: str) -> None:
    treefiles.real_parents(worktree, relative)
    target = worktree / relative
    if target.is_symlink() or (target.exists() and not target.is_file()):
        treefiles.remove_tree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def run_setup_command(
    spec: ScoringSpec,
    subject: ScoringSubject,
    worktree: Path,
    command: str | None,
    key: str,
    *,
    sandbox: Sandbox | None = None,
) -> None:
    """Run a set-up command in the worktree (output in ``<name>_setup.log``); raise when it fails."""
    if not command:
        return
    name = subject.name
    finished = run_owned(
        command,
        cwd=worktree,
        env=scoring_env(spec, subject, worktree),
        timeout=spec.score.timeout,
        output=spec.paths.trial_file(name, "_setup.log"),
        sandbox=sandbox,
    )
    if finished.limit is not None:
        raise RuntimeError(f"{key} failed (limit: {finished.limit}; see {name}_setup.log): {command}")
    if finished.returncode != 0:
        raise RuntimeError(f"{key} failed (exit {finished.returncode}; see {name}_setup.log): {command}")
