"""The commands that do not run an experiment: ``--explore-list``, ``-results``, ``-cleanup``, ``-merge``.

They read only the data directory (no variants file needed) and print to the
terminal, the way ``pytest --fixtures`` does.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest

from . import gitops
from .record import TrialRecord, read_json
from .results import format_table, load_records, rank, write_report
from .settings import ExperimentPaths, Workspace, resolve_workspace

Write = Callable[[str], None]


def list_experiments(workspace: Workspace) -> list[dict[str, Any]]:
    """One entry per experiment in the data directory: name, variants, status counts, best, date."""
    entries: list[dict[str, Any]] = []
    if not workspace.explore_dir.is_dir():
        return entries
    for folder in sorted(p for p in workspace.explore_dir.iterdir() if p.is_dir()):
        paths = ExperimentPaths(folder)
        info = read_json(paths.experiment_json) or {}
        records = load_records(paths)
        counts: dict[str, int] = {}
        for record in records:
            counts[record.status.value] = counts.get(record.status.value, 0) + 1
        scored = [r for r in records if r.score is not None]
        best = max(scored, key=lambda r: r.score or 0.0) if scored else None
        entries.append(
            {
                "name": folder.name,
                "variants": info.get("trial_names", [r.name for r in records]),
                "status_counts": counts,
                "best": best.name if best else None,
                "best_score": best.score if best else None,
                "date": info.get("started"),
            }
        )
    return entries


def show_results(workspace: Workspace, experiment: str, write: Write) -> int:
    """Rebuild the report from the saved progress (finished or partial) and print it."""
    paths = workspace.experiment(experiment)
    info = read_json(paths.experiment_json)
    if info is None:
        raise pytest.UsageError(f"--explore {experiment}: no such experiment in {workspace.explore_dir}")
    results = write_report(paths, info, load_records(paths, info.get("trial_names")))
    write(paths.summary_md.read_text())
    for line in format_table(results):
        write(line)
    return 0


def cleanup_experiment(workspace: Workspace, experiment: str, *, delete_branches: bool = False) -> list[str]:
    """Remove the experiment's worktrees (branches, patches and results stay unless asked)."""
    paths = workspace.experiment(experiment)
    removed = []
    if paths.worktrees.is_dir():
        for worktree in sorted(paths.worktrees.iterdir()):
            gitops.remove_worktree(workspace.repo_root, worktree)
            if worktree.exists():
                shutil.rmtree(worktree)
            removed.append(str(worktree))
    gitops.prune_worktrees(workspace.repo_root)  # also forgets worktrees deleted by hand
    if delete_branches:
        branches = gitops.branches_under(workspace.repo_root, f"explore/{experiment}/")
        gitops.delete_branches(workspace.repo_root, branches)
        removed.extend(branches)
    return removed


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
    message = f"Adopt {chosen.name} from experiment {experiment} (score {chosen.score:.3f})\n\n{chosen.description}"
    try:
        head = gitops.merge_branch(workspace.repo_root, chosen.branch, squash=squash, message=message)
    except gitops.GitProblem as exc:
        raise pytest.UsageError(f"--explore-adopt: {exc}") from None
    return chosen, head


def run_command(config: pytest.Config, write: Write) -> int:
    """Carry out whichever non-run command was asked for; return the exit code."""
    workspace = resolve_workspace(config)
    experiment = config.getoption("explore")
    if config.getoption("explore_list"):
        entries = list_experiments(workspace)
        if not entries:
            write(f"no experiments in {workspace.explore_dir}")
        for e in entries:
            counts = ", ".join(f"{n} {s}" for s, n in sorted(e["status_counts"].items())) or "not run"
            best = f"best {e['best']} ({e['best_score']:.3f})" if e["best"] else "no score yet"
            write(f"{e['name']}: {len(e['variants'])} variants; {counts}; {best}; {e['date'] or '-'}")
        return 0
    if not experiment:
        raise pytest.UsageError(
            "--explore-results, --explore-cleanup, --explore-merge and --explore-adopt need --explore NAME"
        )
    if config.getoption("explore_results"):
        return show_results(workspace, experiment, write)
    if config.getoption("explore_adopt"):
        chosen, head = adopt(
            workspace, experiment, config.getoption("explore_adopt"), squash=config.getoption("explore_adopt_squash")
        )
        how = "squashed into one commit" if config.getoption("explore_adopt_squash") else "merged"
        write(f"explore {experiment}: adopted {chosen.name} (score {chosen.score:.3f}): {chosen.branch} {how}")
        write(f"HEAD is now {head[:12]}")
        return 0
    if config.getoption("explore_merge"):
        from .merge import merge_results

        sources = [config.invocation_params.dir / d for d in config.getoption("explore_merge")]
        results = merge_results(workspace, experiment, sources)
        for line in format_table(results):
            write(line)
        write(f"summary: {workspace.experiment(experiment).summary_md}")
        return 0
    removed = cleanup_experiment(workspace, experiment, delete_branches=config.getoption("explore_delete_branches"))
    write(f"explore {experiment}: removed {len(removed)} worktrees/branches")
    for item in removed:
        write(f"  {item}")
    return 0
