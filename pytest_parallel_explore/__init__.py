"""pytest-parallel-explore: run coding-agent variants side by side in private checkouts and score them.

The public API: run, list and clean up experiments from Python, and the
typed results they give (also what the ``pytest_explore_*`` hooks receive).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .version import __version__

if TYPE_CHECKING:
    from .cli.api import cleanup_experiment, list_experiments, run_parallel_experiment_sync
    from .cli.commands import ExperimentEntry
    from .model.frozen import ReadOnlyError
    from .model.record import TrialRecord
    from .model.settings import TrialView
    from .report.model import Results

__all__ = [
    "ExperimentEntry",
    "ReadOnlyError",
    "Results",
    "TrialRecord",
    "TrialView",
    "__version__",
    "cleanup_experiment",
    "list_experiments",
    "run_parallel_experiment_sync",
]

# Imported on first use, so that ``import pytest_parallel_explore`` (done by
# pytest for every run, explore or not) costs nothing.
_LAZY = {
    "cleanup_experiment": "cli.api",
    "list_experiments": "cli.api",
    "run_parallel_experiment_sync": "cli.api",
    "ExperimentEntry": "cli.commands",
    "ReadOnlyError": "model.frozen",
    "TrialRecord": "model.record",
    "TrialView": "model.settings",
    "Results": "report.model",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
