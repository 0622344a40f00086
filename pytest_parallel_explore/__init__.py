"""pytest-parallel-explore: run coding-agent variants side by side in git worktrees and score them."""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__", "cleanup_experiment", "list_experiments", "run_parallel_experiment_sync"]


def __getattr__(name: str) -> object:
    # The API is imported lazily so that `import pytest_parallel_explore` (done by
    # pytest for every run, explore or not) costs nothing.
    if name in {"cleanup_experiment", "list_experiments", "run_parallel_experiment_sync"}:
        from .cli import api

        return getattr(api, name)
    raise AttributeError(name)
