"""Hooks for ``conftest.py`` files and plugins: the plugin's extension API.

Implementations run in the process that runs the trial (an xdist worker, or
the main process without xdist), except ``pytest_explore_summary`` which runs
in the controller.  The plugin's own implementations are ``trylast`` so that a
user's ``conftest.py`` wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .agents import Agent
    from .record import TrialRecord
    from .spec import VariantSpec


@pytest.hookspec(firstresult=True)
def pytest_explore_make_agent(config: pytest.Config, variant: VariantSpec) -> Agent | None:
    """Return the agent that will run ``variant``, or None to let other plugins decide.

    Called in the controller (to check that every variant has an agent and
    that it can run, before anything is created) and in the process running
    the trial.  ``variant.agent`` is the merged ``agent:`` mapping.
    """


@pytest.hookspec(firstresult=True)
def pytest_explore_prompt(config: pytest.Config, variant: VariantSpec, task: str) -> str | None:
    """Return the prompt given to the agent for ``variant``, or None for the next implementation.

    The plugin's own implementation renders the jinja2 prompt template (task,
    variant description and the methodology section).
    """


@pytest.hookspec
def pytest_explore_score(
    config: pytest.Config, variant: VariantSpec, worktree: Path, trial: TrialRecord
) -> dict[str, float] | None:
    """Measure the finished ``worktree``; return a dict of metric name -> number.

    Every implementation is called and the dicts are merged; the weighted
    score is computed from the merged metrics (``score.weights``).  The
    plugin's own implementation runs the project's test suite
    (``score.command``), fills ``trial.tests`` with the per-test outcomes and
    returns ``tests_pass_rate`` and the counts, then the ``score.metrics``
    commands.  ``trial`` is the record being built, for reading its agent
    figures or adding ``trial.flags``.
    """


@pytest.hookspec
def pytest_explore_trial_progress(config: pytest.Config, trial: TrialRecord) -> None:
    """Called in the trial's process each time ``trial``'s record is saved (a step, an agent turn)."""


@pytest.hookspec
def pytest_explore_trial_finished(config: pytest.Config, trial: TrialRecord) -> None:
    """Called in the trial's process after ``trial`` reached its final state and was saved."""


@pytest.hookspec
def pytest_explore_summary(config: pytest.Config, results: dict[str, Any]) -> None:
    """Called in the controller after ``results.json`` and ``summary.md`` were written.

    ``results`` is the content of ``results.json`` (schema 1).
    """
