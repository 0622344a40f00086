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

from .record import Status, TrialRecord, read_json, save, write_json
from .results import write_report
from .settings import TRIAL_FILE_SUFFIXES, Workspace

#: The experiment-level keys of results.json that are copied into the merged report.
_EXPERIMENT_KEYS = ("experiment", "task", "source", "base", "base_commit", "score_command", "plugin_version")


def find_results(source: Path) -> list[Path]:
    """``results.json`` files in ``source``: the folder itself, or its subfolders (downloaded artifacts)."""
    if (source / "results.json").is_file():
        return [source / "results.json"]
    return sorted(source.rglob("results.json"))


def merge_results(workspace: Workspace, experiment: str, sources: Sequence[Path]) -> dict[str, Any]:
    """Merge the results found in ``sources`` into the experiment's own results folder."""
    paths = workspace.experiment(experiment)
    info: dict[str, Any] | None = None
    variants: list[str] = []
    records: dict[str, TrialRecord] = {}
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
            for trial in data.get("trials", []):
                record = TrialRecord.from_json(trial)
                if record.name not in variants:
                    variants.append(record.name)
                if _better(record, records.get(record.name)):
                    records[record.name] = record
                    _copy_trial_files(results_json.parent, paths.results, record.name)
    if info is None:
        raise pytest.UsageError("--explore-merge: give at least one results folder")
    info["trial_names"] = variants
    for record in records.values():
        save(record, paths.trial_file(record.name, "_progress.json"))
    write_json(paths.experiment_json, info)
    results = write_report(paths, info, list(records.values()))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(paths.summary_md.read_text(encoding="utf-8") + "\n")
    return results


def _better(candidate: TrialRecord, current: TrialRecord | None) -> bool:
    """Prefer a finished record to an unfinished one, then the most recent."""
    if current is None:
        return True
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
