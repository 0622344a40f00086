"""``--explore-merge``: one report from the results of several runs (CI matrix jobs).

Each job runs one variant and uploads its ``results/`` folder; the merge
checks that they all belong to the same experiment and base commit, keeps
each trial's most complete record, copies the trials' files (patches, logs)
next to each other, pools the jobs' baselines (each job scored the same base
commit) and writes one ``results.json`` and ``summary.md``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from ..model.baseline import Baseline
from ..model.jsonfile import read_json, write_json
from ..model.paths import TRIAL_FILE_SUFFIXES, Workspace
from ..model.record import Status, TrialRecord, save
from .fields import ResultsError
from .model import ExperimentInfo, Results
from .results import write_report


def find_results(source: Path) -> list[Path]:
    """``results.json`` files in ``source``: the folder itself, or its subfolders (downloaded artifacts)."""
    if (source / "results.json").is_file():
        return [source / "results.json"]
    return sorted(source.rglob("results.json"))


def merge_results(workspace: Workspace, experiment: str, sources: Sequence[Path]) -> Results:
    """Merge the results found in ``sources`` into the experiment's own results folder.

    Every file is read and checked before anything is written: the folders
    are downloaded artifacts, and a record's trial name becomes a path and a
    branch name here.
    """
    paths = workspace.experiment(experiment)
    info: ExperimentInfo | None = None
    trial_names: list[str] = []
    chosen: dict[str, tuple[TrialRecord, Path]] = {}  # trial -> its best record and the folder holding its files
    baselines: list[Baseline] = []
    for source in sources:
        found = find_results(source)
        if not found:
            raise pytest.UsageError(f"--explore-merge: {source}: no results.json found (expected a results folder)")
        for results_json in found:
            results = _read(results_json, experiment, info)
            info = info or results.info
            if results.baseline is not None:
                baselines.append(results.baseline)
            for record in results.trials:
                if record.name not in trial_names:
                    trial_names.append(record.name)
                current = chosen.get(record.name)
                if _better(record, current[0] if current else None):
                    chosen[record.name] = (record, results_json.parent)
    if info is None:
        raise pytest.UsageError("--explore-merge: give at least one results folder")
    info = info.merged(trial_names)
    for record, folder in chosen.values():
        _copy_trial_files(folder, paths.results, record.name)
        save(record, paths.trial_file(record.name, "_progress.json"))
    write_json(paths.experiment_json, info.to_json())
    if baselines:
        write_json(paths.baseline_json, pooled_baseline(baselines).to_json())
    results = write_report(paths, info, [record for record, _ in chosen.values()])
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(paths.summary_md.read_text(encoding="utf-8") + "\n")
    return results


def pooled_baseline(baselines: Sequence[Baseline]) -> Baseline:
    """The jobs' baselines as one: every run counts, and a test whose outcome differs between jobs is flaky.

    The jobs ran the same tests on the same commit, so an outcome that changes
    between them is as flaky as one that changes between two runs of one job.
    """
    first = baselines[0]
    names = {name for b in baselines for name in b.cases}
    differing = {name for name in names if len({b.cases.get(name) for b in baselines}) > 1}
    flaky = frozenset().union(*(b.flaky for b in baselines), differing)
    return dataclasses.replace(
        first,
        runs=sum(b.runs for b in baselines),
        flaky=flaky,
        judged=frozenset().union(*(b.judged for b in baselines)) - flaky,
    )


def _read(results_json: Path, experiment: str, first: ExperimentInfo | None) -> Results:
    """One job's results, checked: of this experiment, of the first one's base commit, each trial on its branch."""
    where = f"--explore-merge: {results_json}"
    try:
        results = Results.from_json(read_json(results_json))
    except ResultsError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None
    if results.info.experiment != experiment:
        raise pytest.UsageError(f"{where}: belongs to experiment {results.info.experiment!r}, not {experiment!r}")
    if first is not None and results.info.base_commit != first.base_commit:
        raise pytest.UsageError(
            f"{where}: base commit {results.info.base_commit} differs from {first.base_commit}; "
            "results of different bases cannot be compared"
        )
    for index, record in enumerate(results.trials):
        branch = f"explore/{experiment}/{record.name}"
        if record.branch != branch:
            raise pytest.UsageError(f"{where}: trials[{index}].branch: expected {branch!r}, got {record.branch!r}")
    return results


def _better(candidate: TrialRecord, current: TrialRecord | None) -> bool:
    """Prefer a record with an outcome to a missing one, a done one to any other, then the most recent."""
    if current is None:
        return True
    outcome = (candidate.status.outcome, current.status.outcome)
    if outcome[0] != outcome[1]:
        return outcome[0]
    done = (candidate.status is Status.DONE, current.status is Status.DONE)
    if done[0] != done[1]:
        return done[0]
    return (candidate.finished_at or 0) > (current.finished_at or 0)


def _copy_trial_files(source: Path, target: Path, trial: str) -> None:
    if source.resolve() == target.resolve():
        return
    target.mkdir(parents=True, exist_ok=True)
    for suffix in TRIAL_FILE_SUFFIXES:
        file = source / f"{trial}{suffix}"
        if file.is_file():
            shutil.copy2(file, target / file.name)
