"""How a run's resolved state travels: ``config.stash`` keys, and the keys xdist hands to its workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..model.settings import Settings  # noqa: F401 -- named in a StashKey below
    from ..repo.repostate import RepoState  # noqa: F401 -- named in a StashKey below

SETTINGS_KEY = pytest.StashKey["Settings"]()
#: The user's repository as it was before any agent ran (see ``repostate``).
REPO_STATE_KEY = pytest.StashKey["RepoState"]()

#: ``--variants`` as the controller read it, in JSON (``VariantsInput``); also its workerinput key.
VARIANTS_INPUT_KEY = pytest.StashKey[str]()
VARIANTS_INPUT = "explore_variants_input"
#: workerinput key that carries the controller's base commit to xdist workers.
BASE_COMMIT_KEY = "explore_base_commit"
#: workerinput key that carries the controller's snapshot of the repository to xdist workers.
REPO_STATE_INPUT = "explore_repo_state"
#: workerinput key that carries the trials ``--explore-retry-failed`` runs again, as the controller found them.
RETRY_SELECTION_INPUT = "explore_retry_selection"
