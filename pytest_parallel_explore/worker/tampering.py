"""What an agent, or the code it wrote, changed of the user's repository: undone, and noted on its record.

The agent runs, and so does its code when it is scored: after each, the
repository is put back as the run found it (see :mod:`..repo.repostate`), and
what had changed becomes the trial's ``tampering``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import pytest

from ..config.keys import REPO_STATE_KEY
from ..model.record import TrialRecord
from ..model.settings import Settings
from ..repo import gitops, repostate


def restore_repository(config: pytest.Config, settings: Settings, trial: str) -> list[str]:
    """Put back the user's refs, HEAD, config, hooks, exclude (and files, without a sandbox); say what changed.

    What it replaces of the main checkout is moved to ``kept/main-checkout-<trial>-<time>`` first.
    """
    before = config.stash.get(REPO_STATE_KEY, None)
    if before is None:
        return []
    root = settings.workspace.repo_root
    own = settings.workspace.own_refs(settings.experiment)
    aside = settings.paths.kept / f"main-checkout-{trial}-{int(time.time())}"
    with gitops.repo_lock(root):
        return repostate.restore(gitops.sealed(root).git_dir, before, own, aside)


def note(record: TrialRecord, what: Iterable[str]) -> None:
    """Add ``what`` to the trial's tampering, each thing once."""
    record.tampering.extend(w for w in what if w not in record.tampering)
