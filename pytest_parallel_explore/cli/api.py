"""The Python API (the seed's interface): run, list and clean up experiments from code.

A run is a real ``pytest --explore`` in a subprocess, so it behaves exactly
like the command line (xdist workers, hooks from ``conftest.py``) and cannot
disturb the caller's interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config.defaults import DEFAULT_DIR
from ..model.jsonfile import read_json
from ..model.paths import Workspace
from ..report.model import Results
from . import commands
from .commands import ExperimentEntry


def run_parallel_experiment_sync(
    name: str,
    variants: Mapping[str, Any] | str | int,
    *,
    task: str | None = None,
    workers: int | None = None,
    cwd: str | Path = ".",
    extra_args: Sequence[str] = (),
) -> Results:
    """Run experiment ``name`` and return its results (``results.to_json()`` is ``results.json``).

    ``variants`` is a mapping (name -> description, or a whole spec), a path
    to a variants file, or a number of identical variants.  Raises
    ``RuntimeError`` when pytest could not run the experiment at all; variants
    that failed are in the results with their reasons.
    """
    spec = json.dumps(variants) if isinstance(variants, Mapping) else str(variants)
    args = [sys.executable, "-m", "pytest", "--explore", name, "--variants", spec, "-p", "no:cacheprovider"]
    if task is not None:
        args += ["--explore-task", task]
    if workers:
        args += ["-n", str(workers)]
    proc = subprocess.run([*args, *extra_args], cwd=cwd, capture_output=True, text=True)
    results = _workspace(Path(cwd)).experiment(name).results_json
    if proc.returncode not in (0, 1) or not results.is_file():
        raise RuntimeError(f"pytest --explore {name} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return Results.from_json(read_json(results))


def list_experiments(cwd: str | Path = ".", explore_dir: str = DEFAULT_DIR) -> list[ExperimentEntry]:
    """Name, variants, status counts, best variant and date of each experiment."""
    return commands.list_experiments(_workspace(Path(cwd), explore_dir))


def cleanup_experiment(
    name: str, cwd: str | Path = ".", *, delete_branches: bool = False, explore_dir: str = DEFAULT_DIR
) -> list[str]:
    """Remove the experiment's worktrees (and branches if asked); return what was removed."""
    return commands.cleanup_experiment(
        _workspace(Path(cwd), explore_dir), name, delete_branches=delete_branches
    ).removed


def _workspace(cwd: Path, explore_dir: str = DEFAULT_DIR) -> Workspace:
    from ..repo.gitops import repo_root

    root = repo_root(cwd.resolve())
    return Workspace(root, (root / explore_dir).resolve())
