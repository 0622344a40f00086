"""The commands that do not run an experiment: ``--explore-list``, ``-results``, ``-cleanup``, ``-merge``, ``-adopt``.

They read only the data directory (no variants file needed) and run the way
pytest's own ``--help`` does: plugins configured and unconfigured, no test
session, so the terminal shows only the command's own output.  Exit codes: 0
when the command did its job; 4 (usage error, one ``ERROR:`` line on stderr)
when it refuses, e.g. an unknown experiment or variant or a checkout that an
adoption would overwrite; 3 (internal error) when the plugin itself broke.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..config.settings import resolve_workspace
from ..controller.runlock import ExperimentBusy, ExperimentLock
from ..model.jsonfile import read_json
from ..model.paths import ExperimentPaths, Workspace
from ..model.record import TrialRecord, load_records
from ..repo import gitops, treefiles
from ..report.fields import ResultsError
from ..report.model import ExperimentInfo
from ..report.results import write_report
from ..report.standing import rank
from ..report.text import format_table
from . import adoption

Write = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class ExperimentEntry:
    """One experiment of the data directory as ``--explore-list`` shows it."""

    name: str
    variants: list[str]  # its trials' names
    status_counts: dict[str, int]
    best: str | None  # the trial the table ranks first among the scored ones
    best_score: float | None
    date: str | None  # when its last run started

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def list_experiments(workspace: Workspace) -> list[ExperimentEntry]:
    """One entry per experiment in the data directory: name, variants, status counts, best, date."""
    entries: list[ExperimentEntry] = []
    if not workspace.explore_dir.is_dir():
        return entries
    # Experiment names never start with a dot; the plugin's own folders (the score cache) do.
    for folder in sorted(p for p in workspace.explore_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        paths = ExperimentPaths(folder)
        info = read_json(paths.experiment_json) or {}
        records = load_records(paths)
        counts: dict[str, int] = {}
        for record in records:
            counts[record.status.value] = counts.get(record.status.value, 0) + 1
        # Ranked as the table ranks them, so ties name the trial listed first there (and adopted as "best").
        best = next((r for r in rank(records) if r.score is not None), None)
        entries.append(
            ExperimentEntry(
                name=folder.name,
                variants=info.get("trial_names", [r.name for r in records]),
                status_counts=counts,
                best=best.name if best else None,
                best_score=best.score if best else None,
                date=info.get("started"),
            )
        )
    return entries


def show_results(workspace: Workspace, experiment: str, write: Write) -> int:
    """Rebuild the report from the saved progress (finished or partial) and print it."""
    paths = workspace.experiment(experiment)
    data = read_json(paths.experiment_json)
    if data is None:
        raise pytest.UsageError(f"--explore {experiment}: no such experiment in {workspace.explore_dir}")
    try:
        info = ExperimentInfo.from_json(data)
    except ResultsError as exc:
        raise pytest.UsageError(f"--explore-results: {paths.experiment_json}: {exc}") from None
    results = write_report(paths, info, load_records(paths, info.trial_names))
    write(paths.summary_md.read_text())
    for line in format_table(results):
        write(line)
    return 0


@dataclasses.dataclass
class Cleanup:
    """What ``--explore-cleanup`` removed, and what it left in the worktrees folder and why."""

    removed: list[str] = dataclasses.field(default_factory=list)
    left: list[str] = dataclasses.field(default_factory=list)


def cleanup_experiment(workspace: Workspace, experiment: str, *, delete_branches: bool = False) -> Cleanup:
    """Remove the experiment's trial folders (branches, patches and results stay unless asked).

    Only the folders of the experiment's trials (those with a record) in its
    ``worktrees/`` folder are removed, and the base objects they borrow
    unless a folder moved aside to ``kept/`` still does, and the run's
    private store (``store.git``); also the linked
    worktrees that earlier versions made there on one of its
    ``explore/<experiment>/`` branches, through git.  Nothing else is
    deleted: another folder there may be the user's, and is reported instead.
    """
    paths = workspace.experiment(experiment)
    folder = paths.worktrees.resolve()
    prefix = f"explore/{experiment}/"
    result = Cleanup()
    done: set[Path] = set()
    for entry in gitops.list_worktrees(workspace.repo_root):
        path = entry.path.resolve()
        if not path.is_relative_to(folder) or path == folder:
            continue
        done.add(path)
        if entry.branch is not None and not entry.branch.startswith(prefix):
            result.left.append(f"{path}: on branch {entry.branch}, not one of {prefix}*; left alone")
            continue
        _remove(workspace, path, result, " (locked)" if entry.locked else "")
    gitops.prune_worktrees(workspace.repo_root)  # also forgets worktrees deleted by hand
    trials = {record.name for record in load_records(paths)}
    for stray in sorted(p for p in folder.iterdir() if p.resolve() not in done) if folder.is_dir() else []:
        if stray.name in trials and not stray.is_symlink():
            _remove(workspace, stray, result, "")
        else:
            result.left.append(f"{stray}: not a trial's folder; left alone (delete it yourself if unneeded)")
    kept = sorted(paths.kept.iterdir()) if paths.kept.is_dir() else []
    for moved in kept:
        result.left.append(
            f"{moved}: a worktree with changes of yours, moved aside by a rerun; left alone "
            f"(when done with it: rm -r {moved})"
        )
    if not kept and paths.shared_base.is_dir():
        treefiles.remove_tree(paths.shared_base)
    # The run's private copies of the hold-out and of the main checkout, and its suite slots: the next
    # run makes them again.
    treefiles.remove_tree(paths.store)
    treefiles.remove_tree(paths.suite_pool.parent)
    result.removed.sort()
    if delete_branches:
        branches = gitops.branches_under(workspace.repo_root, prefix)
        gitops.delete_branches(workspace.repo_root, branches)
        result.removed.extend(branches)
    return result


def _remove(workspace: Workspace, path: Path, result: Cleanup, why: str) -> None:
    gitops.remove_trial_folder(workspace.repo_root, path)
    if path.exists():
        result.left.append(f"{path}: could not be removed{why}")
    else:
        result.removed.append(str(path))


def adopt(workspace: Workspace, experiment: str, which: str, *, squash: bool) -> tuple[TrialRecord, str]:
    """Merge the chosen trial's branch (a name, or ``best``) into the current branch."""
    records = rank(load_records(workspace.experiment(experiment)))
    if not records:
        raise pytest.UsageError(f"--explore-adopt: experiment {experiment!r} has no results in {workspace.explore_dir}")
    chosen = records[0] if which == "best" else next((r for r in records if r.name == which), None)
    if chosen is None:
        names = ", ".join(r.name for r in records)
        raise pytest.UsageError(
            f"--explore-adopt: no variant {which!r} in {experiment!r}; expected 'best' or one of {names}"
        )
    if chosen.score is None or chosen.commit is None:
        raise pytest.UsageError(
            f"--explore-adopt: {chosen.name} was not scored ({chosen.status.value}: {chosen.reason or 'not run'}); "
            "only a scored variant can be adopted"
        )
    expected_branch = workspace.branch(experiment, chosen.name)
    if chosen.branch != expected_branch:
        raise pytest.UsageError(
            f"--explore-adopt: the record of {chosen.name} names branch {chosen.branch!r}; expected {expected_branch!r}"
        )
    tip = gitops.branch_commit(workspace.repo_root, chosen.branch)
    if tip != chosen.commit:
        now = f"points at {tip[:12]}" if tip else "does not exist"
        raise pytest.UsageError(
            f"--explore-adopt: {chosen.branch} {now}, not the scored commit {chosen.commit[:12]}; "
            "rerun the variant (or merge the branch yourself if you trust it)"
        )
    message = f"Adopt {chosen.name} from experiment {experiment} (score {chosen.score:.3f})\n\n{chosen.description}"
    try:
        head = adoption.merge_branch(workspace.repo_root, chosen.branch, squash=squash, message=message)
    except gitops.GitProblem as exc:
        raise pytest.UsageError(f"--explore-adopt: {exc}") from None
    return chosen, head


def main(config: pytest.Config) -> int:
    """Configure, carry out the asked command, unconfigure: what ``pytest --help`` does, not a session.

    ``wrap_session`` would print the session banner and "no tests ran" around
    the command's output.  A ``UsageError`` propagates to pytest, which prints
    it as one ``ERROR:`` line and exits 4.
    """
    config._do_configure()
    try:
        return run_command(config, _writer(config))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return pytest.ExitCode.INTERRUPTED
    except pytest.UsageError:
        raise
    except Exception:
        # As wrap_session does: an INTERNALERROR report through the hook, exit 3.
        config.notify_exception(pytest.ExceptionInfo.from_current(), config.option)
        return pytest.ExitCode.INTERNAL_ERROR
    finally:
        config._ensure_unconfigure()


@contextlib.contextmanager
def _experiment_held(workspace: Workspace, experiment: str, command: str) -> Iterator[None]:
    """Hold the experiment's run lock: no cleanup, merge or adoption under a run using its worktrees and branches."""
    paths = workspace.experiment(experiment)
    if not paths.root.is_dir():  # no run there; and asking must not make the folder
        yield
        return
    lock = ExperimentLock(paths.lock)
    try:
        lock.acquire()
    except ExperimentBusy as exc:
        raise pytest.UsageError(f"{command}: {exc}") from None
    try:
        yield
    finally:
        lock.release()


def _writer(config: pytest.Config) -> Write:
    """The terminal reporter's writer, or one of our own when ``-p no:terminal`` removed it."""
    if config.pluginmanager.get_plugin("terminalreporter") is not None:
        return config.get_terminal_writer().line
    return print  # plain lines: the --color option went with the terminal plugin


def run_command(config: pytest.Config, write: Write) -> int:
    """Carry out whichever non-run command was asked for; return the exit code."""
    workspace = resolve_workspace(config)
    experiment = config.getoption("explore")
    if config.getoption("explore_list"):
        entries = list_experiments(workspace)
        if not entries:
            write(f"no experiments in {workspace.explore_dir}")
        for e in entries:
            counts = ", ".join(f"{n} {s}" for s, n in sorted(e.status_counts.items())) or "not run"
            best = f"best {e.best} ({e.best_score:.3f})" if e.best is not None else "no score yet"
            write(f"{e.name}: {len(e.variants)} variants; {counts}; {best}; {e.date or '-'}")
        return 0
    if not experiment:
        raise pytest.UsageError(
            "--explore-results, --explore-cleanup, --explore-merge and --explore-adopt need --explore NAME"
        )
    if config.getoption("explore_results"):
        return show_results(workspace, experiment, write)
    if config.getoption("explore_adopt"):
        with _experiment_held(workspace, experiment, "--explore-adopt"):
            chosen, head = adopt(
                workspace,
                experiment,
                config.getoption("explore_adopt"),
                squash=config.getoption("explore_adopt_squash"),
            )
        how = "squashed into one commit" if config.getoption("explore_adopt_squash") else "merged"
        write(f"explore {experiment}: adopted {chosen.name} (score {chosen.score:.3f}): {chosen.branch} {how}")
        write(f"HEAD is now {head[:12]}")
        return 0
    if config.getoption("explore_merge"):
        from ..report.merge import merge_results

        sources = [config.invocation_params.dir / d for d in config.getoption("explore_merge")]
        with _experiment_held(workspace, experiment, "--explore-merge"):
            results = merge_results(workspace, experiment, sources)
        for line in format_table(results):
            write(line)
        write(f"summary: {workspace.experiment(experiment).summary_md}")
        return 0
    with _experiment_held(workspace, experiment, "--explore-cleanup"):
        cleanup = cleanup_experiment(workspace, experiment, delete_branches=config.getoption("explore_delete_branches"))
    write(f"explore {experiment}: removed {len(cleanup.removed)} worktrees/branches")
    for item in cleanup.removed:
        write(f"  {item}")
    if cleanup.left:
        write(f"explore {experiment}: left {len(cleanup.left)} in {workspace.experiment(experiment).worktrees}:")
        for item in cleanup.left:
            write(f"  {item}")
    return 0
