"""The plugin's own ``pytest_explore_prompt``: task + approach + methodology, from a template.

The default template (``templates/prompt.md.j2``) carries the "ultrathink"
methodology: understand, plan, implement, run the tests, iterate.  A
``prompt_template`` file in the variants file replaces it, with the same
variables: ``task``, ``variant``, ``description``, ``experiment``,
``worktree`` and ``score_command``.
"""

from __future__ import annotations

import pytest

from ..config.keys import SETTINGS_KEY
from ..model.settings import TrialView
from ..templating import render, render_text


@pytest.hookimpl(trylast=True)
def pytest_explore_prompt(config: pytest.Config, trial: TrialView, task: str) -> str:
    settings = config.stash[SETTINGS_KEY]
    context = {
        "task": task,
        "variant": trial.variant.name,
        "trial": trial.name,
        "description": trial.variant.description,
        "experiment": trial.experiment,
        "worktree": str(trial.worktree),
        "score_command": settings.score.command.replace("{python}", "python"),
    }
    if settings.prompt_template is not None:
        return render_text(settings.prompt_template, **context)
    return render("prompt.md.j2", **context)
