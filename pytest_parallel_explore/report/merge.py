"""``--explore-merge``: one report from the results of several runs (CI matrix jobs).

Each job runs one variant and uploads its ``results/`` folder; the merge
checks that they all belong to the same experiment and base commit, keeps
each trial's most complete record, copies the trials' files (patches, logs)
next to each other and writes one ``results.json`` and ``summary.md``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ..paths import TRIAL_FILE_SUFFIXES, Workspace
from ..record import Status, TrialRecord, read_json, save, write_json
from ..spec import is_safe_name
from .results import write_report

#: The experiment-level keys of results.json that are copied into the merged report.
_EXPERIMENT_KEYS = (
    "experiment",
    "task",
    "source",
    "base",
    "base_commit",
    "score_command",
    "plugin_version",
    "variant_names",
    "race",
)


def find_results(source: Path) -> list[Path]:
    """``results.json`` files in ``source``: the folder itself, or its subfolders (downloaded artifacts)."""
    if (source / "results.json").is_file():
        return [source / "results.json"]
    return sorted(source.rglob("results.json"))


def merge_results(workspace: Workspace, experiment: str, sources: Sequence[Path]) -> dict[str, Any]:
    """Merge the results found in ``sources`` into the experiment's own results folder.

    Every file is read and checked before anything is written: the folders
    are downloaded artifacts, and a record's trial name becomes a path and a
    branch name here.
    """
    paths = workspace.experiment(experiment)
    info: dict[str, Any] | None = None
    variants: list[str] = []
    chosen: dict[str, tuple[TrialRecord, Path]] = {}  # trial -> its best record and the folder holding its files
    for source in sources:
        found = find_results(source)
        if not found:
            raise pytest.UsageError(f"--explore-merge: {source}: no results.json found (expected a results folder)")
        for results_json in found:
            data = read_json(results_json)
            where = f"--explore-merge: {results_json}"
            if not isinstance(data, dict) or data.get("schema") != 1:
                raise pytest.UsageError(f"{where}: not a results.json of schema 1")
            if data.get("experiment") != experiment:
                raise pytest.UsageError(
                    f"{where}: belongs to experiment {data.get('experiment')!r}, not {experiment!r}"
                )
            if info is not None and data.get("base_commit") != info["base_commit"]:
                raise pytest.UsageError(
                    f"{where}: base commit {data.get('base_commit')} differs from {info['base_commit']}; "
                    "results of different bases cannot be compared"
                )
            info = info or {key: data.get(key) for key in _EXPERIMENT_KEYS}
            for record in _trial_records(data, experiment, where):
                if record.name not in variants:
                    variants.append(record.name)
                current = chosen.get(record.name)
                if _better(record, current[0] if current else None):
                    chosen[record.name] = (record, results_json.parent)
    if info is None:
        raise pytest.UsageError("--explore-merge: give at least one results folder")
    info["trial_names"] = variants
    for record, folder in chosen.values():
        _copy_trial_files(folder, paths.results, record.name)
        save(record, paths.trial_file(record.name, "_progress.json"))
    write_json(paths.experiment_json, info)
    results = write_report(paths, info, [record for record, _ in chosen.values()])
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(paths.summary_md.read_text(encoding="utf-8") + "\n")
    return results


def _trial_records(data: dict[str, Any], experiment: str, where: str) -> list[TrialRecord]:
    """The trial records of one results.json, each checked: safe names, and the branch its name implies."""
    trials = data.get("trials", [])
    if not isinstance(trials, list):
        raise pytest.UsageError(f"{where}: trials: expected a list of trial records, got {type(trials).__name__}")
    records = []
    for index, trial in enumerate(trials):
        at = f"{where}: trials[{index}]"
        if not isinstance(trial, dict):
            raise pytest.UsageError(f"{at}: expected a trial record (a mapping), got {type(trial).__name__}")
        for key in ("name", "variant"):
            value = trial.get(key)
            if not isinstance(value, str) or not is_safe_name(value):
                raise pytest.UsageError(
                    f"{at}.{key}: unsafe name {value!r}; expected letters, digits, '.', '_' and '-' "
                    "(names become paths and git refs)"
                )
        branch = f"explore/{experiment}/{trial['name']}"
        if trial.get("branch") != branch:
            raise pytest.UsageError(f"{at}.branch: expected {branch!r}, got {trial.get('branch')!r}")
        try:
            records.append(TrialRecord.from_json(trial))
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(f"{at}: not a trial record of this plugin: {exc}") from None
    return records


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
