"""Names the plugin needs before it knows whether it will run: defaults, help texts, keys.

Kept apart and free of imports so that loading the plugin, which pytest does
in every run of every suite where it is installed, costs nothing measurable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..model.settings import Settings  # noqa: F401 -- named in a StashKey below
    from ..repo.repostate import RepoState  # noqa: F401 -- named in a StashKey below

DEFAULT_DIR = ".data/parallel_explorer"
DEFAULT_TIMEOUT = 1800.0
DEFAULT_SCORE_TIMEOUT = 600.0
DEFAULT_MAX_CONCURRENT = 3
DEFAULT_SCORE_COMMAND = "{python} -m pytest -q"

DIR_HELP = f"where experiments live, relative to the repository root (default: {DEFAULT_DIR})"
TIMEOUT_HELP = "per-trial time limit for the agent, e.g. 1800, 90s, 20m, 1h (default: 30m)"
MAX_CONCURRENT_HELP = f"upper bound on trials run at once, whatever -n says (default: {DEFAULT_MAX_CONCURRENT})"
SCORE_COMMAND_HELP = f"the project's test suite, run in each worktree (default: {DEFAULT_SCORE_COMMAND})"
AGENT_HELP = "default agent backend (default: anthropic when ANTHROPIC_API_KEY is set)"

SETTINGS_KEY = pytest.StashKey["Settings"]()
#: The user's repository as it was before any agent ran (see ``repostate``).
REPO_STATE_KEY = pytest.StashKey["RepoState"]()

#: workerinput key that carries the controller's base commit to xdist workers.
BASE_COMMIT_KEY = "explore_base_commit"
#: workerinput key that carries the controller's snapshot of the repository to xdist workers.
REPO_STATE_INPUT = "explore_repo_state"
