"""What an agent, or the code it wrote, changed of the user's repository: undone, and noted on its record.

The agent runs, and so does its code when it is scored: after each, the
repository is put back as the run found it (see :mod:`..repo.repostate`), and
what had changed becomes the trial's ``tampering`` when the trial is the only
one that could have made it.  Without a sandbox other trials' agents and
scored code may run at the same time with the same access, and the first check
after a change finds it, whoever made it: then the change is a flag of the
trial that found it, naming the trials that ran beside it, and fails no one.

Only what this process saw itself decides: the trials it ran, kept in memory.
Other workers' progress files are within an unsandboxed agent's reach (it
could rewrite, remove or replace one to shift the blame), so they are never
read here; a run of several xdist workers with more than one unsandboxed
trial attributes no change that another worker's trial could have made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from ..config.keys import REPO_STATE_KEY
from ..isolation.sandbox import wanted
from ..model.record import REPO_CHECKED, Status, TrialRecord
from ..model.settings import Settings, Trial
from ..repo import gitops, repostate

#: The records of the trials this process ran and checked, by progress file (one per experiment and trial).
_run_here: dict[Path, TrialRecord] = {}
#: What this process reported and left as it was (see ``repostate.LEFT_AS_IT_IS``): found again, it is not news.
_left_reported: set[str] = set()


def check_repository(config: pytest.Config, settings: Settings, record: TrialRecord, step: Status) -> None:
    """Put back the user's refs, HEAD, config, hooks, exclude (and files, without a sandbox) after ``step``'s commands.

    What it replaces of the main checkout is moved to a new ``kept/main-checkout-<trial>-*`` folder first.
    What changed is the trial's tampering when no other trial's unsandboxed commands can have run
    since the last check; a flag of the trial otherwise.
    """
    before = config.stash.get(REPO_STATE_KEY, None)
    if before is None:
        return
    root = settings.workspace.repo_root
    own = settings.workspace.own_refs(settings.experiment)
    with gitops.repo_lock(root):
        checked = time.time()
        git_dir = gitops.sealed(root).git_dir
        found = repostate.restore_keeping(
            git_dir, before, own, settings.paths.kept, root, f"main-checkout-{record.name}-"
        )
    _run_here[_progress(settings, record.name)] = record
    changes = [change for change in found if change not in _left_reported]
    _left_reported.update(change for change in changes if change.endswith(repostate.LEFT_AS_IT_IS))
    if changes:
        makers, elsewhere = _possible_makers(settings, record, checked, _xdist_workers(config))
        if makers == [record.name] and not elsewhere:
            note(record, changes)
        else:
            record.flags.append(_unattributed(changes, record.name, step, makers, elsewhere))
    record.steps[step.value][REPO_CHECKED] = checked


def _possible_makers(settings: Settings, record: TrialRecord, now: float, workers: int) -> tuple[list[str], bool]:
    """The trials this process ran whose unsandboxed commands ran since its last check before ``now``;
    and whether a trial run by another of the run's ``workers`` could have run some too."""
    known = {t.name: _run_here.get(_progress(settings, t.name)) for t in settings.trials}
    known[record.name] = record
    ran = {name: kept for name, kept in known.items() if kept is not None}
    since = max((c for kept in ran.values() for c in _checks(kept) if c < now), default=-math.inf)
    makers = [
        t.name
        for t in settings.trials
        if t.name in ran and any(_ran_between(ran[t.name], step, since, now) for step in _unsandboxed(settings, t))
    ]
    elsewhere = workers > 1 and any(_unsandboxed(settings, t) for t in settings.trials if t.name not in ran)
    return makers, elsewhere


def _unsandboxed(settings: Settings, trial: Trial) -> list[Status]:
    """The steps of ``trial`` whose commands run without a sandbox: its agent's, its scored run's."""
    steps = [] if wanted(settings.sandbox_of(trial.variant).mode) else [Status.AGENT]
    return steps if wanted(settings.sandbox.mode) else [*steps, Status.SCORE]


def _xdist_workers(config: pytest.Config) -> int:
    """How many xdist workers run the trials (1 in a run without xdist)."""
    workerinput = getattr(config, "workerinput", None)
    return int(workerinput.get("workercount", 2)) if workerinput is not None else 1


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


def _unattributed(changes: list[str], name: str, step: Status, makers: list[str], elsewhere: bool) -> str:
    """The flag of a change found by ``name``'s check after ``step`` that need not be its own."""
    others = [m for m in makers if m != name] + (["a trial of another xdist worker"] if elsewhere else [])
    if not others:
        who = "no trial ran without a sandbox meanwhile: made outside the run's trials"
    elif name in makers:
        who = f"made by this trial or by {' or '.join(others)}, run beside it without a sandbox: which cannot be told"
    else:
        who = f"made while {' or '.join(others)} ran without a sandbox, not by this trial's sandboxed commands"
    return f"the repository changed, found after this trial's {step.value} step ({who}): {'; '.join(changes)}"


def note(record: TrialRecord, what: Iterable[str]) -> None:
    """Add ``what`` to the trial's tampering, each thing once."""
    record.tampering.extend(w for w in what if w not in record.tampering)
