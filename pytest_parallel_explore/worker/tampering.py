"""What an agent, or the code it wrote, changed of the user's repository: undone, and noted on its record.

The agent runs, and so does its code when it is scored: after each, the
repository is put back as the run found it (see :mod:`..repo.repostate`), and
what had changed becomes the trial's ``tampering``, when the trial is the only
one that could have made it.  Without a sandbox other trials' agents and
scored code run at the same time with the same access, and the first check
after a change finds it, whoever made it: then the change is a flag of the
trial that found it, naming the trials that ran beside it, and fails no one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from ..config.keys import REPO_STATE_KEY
from ..isolation.sandbox import wanted
from ..model.record import REPO_CHECKED, Status, TrialRecord, try_load
from ..model.settings import Settings
from ..repo import gitops, repostate


def check_repository(config: pytest.Config, settings: Settings, record: TrialRecord, step: Status) -> None:
    """Put back the user's refs, HEAD, config, hooks, exclude (and files, without a sandbox) after ``step``'s commands.

    What it replaces of the main checkout is moved to ``kept/main-checkout-<trial>-<time>`` first.
    What changed is the trial's tampering when no other trial's unsandboxed commands ran since the
    last check (of any trial), and a flag otherwise.
    """
    before = config.stash.get(REPO_STATE_KEY, None)
    if before is None:
        return
    root = settings.workspace.repo_root
    own = settings.workspace.own_refs(settings.experiment)
    aside = settings.paths.kept / f"main-checkout-{record.name}-{int(time.time())}"
    with gitops.repo_lock(root):
        checked = time.time()
        changes = repostate.restore(gitops.sealed(root).git_dir, before, own, aside)
    _checked_here[_progress(settings, record.name)] = record
    if changes:
        makers = possible_makers(settings, record, checked)
        if makers == [record.name]:
            note(record, changes)
        else:
            record.flags.append(_unattributed(changes, record.name, step, makers))
    record.steps[step.value][REPO_CHECKED] = checked


#: The records of the trials this process checked, by progress file: what it knows first-hand (in one
#: process without xdist, every trial); the other trials' come from their progress files.
_checked_here: dict[Path, TrialRecord] = {}


def possible_makers(settings: Settings, record: TrialRecord, now: float) -> list[str]:
    """The trials whose unsandboxed agent or scored run ran between the last check of the repository and ``now``.

    ``record`` is this trial's; the records of trials other processes ran are
    read from their progress files.  A check not saved yet makes the span
    start earlier, so more trials are named, never fewer.
    """
    progress = {t.name: _progress(settings, t.name) for t in settings.trials}
    records = {name: _checked_here.get(path) or try_load(path) for name, path in progress.items()}
    records[record.name] = record
    found = [r for r in records.values() if r is not None]
    since = max((c for r in found for c in _checks(r) if c < now), default=-math.inf)
    makers = []
    for trial in settings.trials:
        kept = records[trial.name]
        if kept is None:
            continue
        steps = [Status.AGENT] if not wanted(settings.sandbox_of(trial.variant).mode) else []
        if not wanted(settings.sandbox.mode):
            steps.append(Status.SCORE)
        if any(_ran_between(kept, step, since, now) for step in steps):
            makers.append(trial.name)
    return makers


def _progress(settings: Settings, name: str) -> Path:
    return settings.paths.trial_file(name, "_progress.json")


def _checks(record: TrialRecord) -> Iterable[float]:
    return (step[REPO_CHECKED] for step in record.steps.values() if REPO_CHECKED in step)


def _ran_between(record: TrialRecord, step: Status, since: float, now: float) -> bool:
    """Whether the commands of ``record``'s ``step`` ran after ``since`` (they all end before the step's check)."""
    times = record.steps.get(step.value)
    if times is None or "started" not in times:
        return False
    if REPO_CHECKED in times:
        ended = times[REPO_CHECKED]
    else:
        ended = times["started"] + times["seconds"] if "seconds" in times else now
    return times["started"] < now and ended > since


def _unattributed(changes: list[str], name: str, step: Status, makers: list[str]) -> str:
    """The flag of a change found by ``name``'s check after ``step`` that need not be its own."""
    others = [m for m in makers if m != name]
    if not others:
        who = "no trial ran without a sandbox meanwhile: made outside the run's trials"
    elif name in makers:
        who = f"made by this trial or by {', '.join(others)}, run beside it without a sandbox: which cannot be told"
    else:
        who = f"made while {', '.join(others)} ran without a sandbox, not by this trial's sandboxed commands"
    return f"the repository changed, found after this trial's {step.value} step ({who}); put back: {'; '.join(changes)}"


def note(record: TrialRecord, what: Iterable[str]) -> None:
    """Add ``what`` to the trial's tampering, each thing once."""
    record.tampering.extend(w for w in what if w not in record.tampering)
