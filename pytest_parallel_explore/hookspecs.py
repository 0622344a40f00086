"""Hooks for ``conftest.py`` files and plugins: the plugin's extension API.

Implementations run in the process that runs the trial (an xdist worker, or
the main process without xdist), except ``pytest_explore_summary`` which runs
in the controller and ``pytest_explore_agent_backends`` which runs in both.
The plugin's own implementations are ``trylast`` so that a user's
``conftest.py`` wins.

What a hook is given is a read-only snapshot (see :mod:`.model.frozen`):
assigning to it raises an error naming the hook, and changing it could not
change the plugin's records anyway.  Hooks answer by returning values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .agents import Agent, AgentBackend
    from .model.record import TrialRecord
    from .model.settings import TrialView
    from .model.spec import VariantSpec
    from .report.model import Results


@pytest.hookspec
def pytest_explore_agent_backends(config: pytest.Config) -> Mapping[str, type[AgentBackend]] | None:
    """Return agent backends to register, as ``{name: class}``; every implementation's answer is used.

    Called once per process (controller and workers) while the variants are
    loaded in ``pytest_configure``, before anything is created.  Each class
    subclasses :class:`pytest_parallel_explore.agents.AgentBackend`: its
    ``setting_keys`` and ``validate_settings`` check the variants that name
    it, with the same errors as the built-in backends (exit 4, the key path,
    "did you mean"), and the plugin builds its agents with ``from_settings``
    unless a ``pytest_explore_make_agent`` answers first.  A name replaces a
    built-in backend of that name; two classes under one name are an error.
    """


@pytest.hookspec(firstresult=True)
def pytest_explore_make_agent(config: pytest.Config, variant: VariantSpec) -> Agent | None:
    """Return the agent that will run ``variant``, or None to let other plugins decide.

    Called in the controller (to check that every variant has an agent and
    that it can run, before anything is created) and in the process running
    the trial.  ``variant.agent`` is the merged ``agent:`` mapping.  The
    plugin's own implementation builds any backend of the registry (see
    ``pytest_explore_agent_backends``); a backend returned only from here has
    its settings checked by nobody but itself.
    """


@pytest.hookspec(firstresult=True)
def pytest_explore_prompt(config: pytest.Config, trial: TrialView, task: str) -> str | None:
    """Return the prompt given to the agent of ``trial``, or None for the next implementation.

    ``trial`` is a read-only view (name, variant, experiment, worktree, base
    commit, index).  The plugin's own implementation renders the jinja2
    prompt template (task, variant description and the methodology section).
    """


@pytest.hookspec
def pytest_explore_score(config: pytest.Config, trial: TrialView, checkout: Path) -> dict[str, float] | None:
    """Measure ``checkout``, the sealed checkout of the trial's work; return a dict of metric name -> number.

    Called after the test suite ran there (a fixed step of every trial, not
    a hook implementation).  Every implementation is called and the dicts
    are merged with the suite's metrics (``tests_pass_rate``, the counts,
    the verdicts) and the ``score.metrics`` commands'; the weighted score is
    computed from all of them (``score.weights``).  ``trial`` is read-only.
    """


@pytest.hookspec
def pytest_explore_trial_progress(config: pytest.Config, trial: TrialRecord) -> None:
    """Called in the trial's process each time ``trial``'s record is saved (a step, an agent turn).

    ``trial`` is a read-only snapshot of the record as saved.
    """


@pytest.hookspec
def pytest_explore_trial_finished(config: pytest.Config, trial: TrialRecord) -> None:
    """Called in the trial's process after ``trial`` reached its final state and was saved.

    ``trial`` is a read-only snapshot: the record was saved before the call, and stays as saved.
    """


@pytest.hookspec
def pytest_explore_summary(config: pytest.Config, results: Results) -> None:
    """Called in the controller after ``results.json``, ``summary.md`` and ``report.html`` were written.

    ``results`` is a read-only :class:`~pytest_parallel_explore.Results`: the trials in ranking order
    (``results.ranks`` gives each one's rank), the variants' statistics and the race;
    ``results.to_json()`` is the content of ``results.json``.
    """
