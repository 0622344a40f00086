"""Whether a trial runs, and how far: what the saved records decide before any of its steps.

Its own saved record may hold an outcome to reuse, or agent work to resume
at scoring; the other trials' records may say that the sequential race no
longer needs it, or that the experiment's budget is spent.  Everything is
read from disk, so every process that could run the trial (an xdist worker,
a resumed run, a CI job) decides alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model.record import SKIPPED_BY_RACE, CorruptRecord, Status, TrialRecord, load, load_records
from ..model.settings import Settings, Trial
from ..repo import gitops


def previous_record(progress: Path) -> tuple[TrialRecord | None, str | None]:
    """The record saved at ``progress``, if any; an unreadable one is set aside and a flag says so."""
    try:
        return load(progress), None
    except CorruptRecord as exc:
        kept = progress.with_name(progress.name + ".corrupt")
        os.replace(progress, kept)
        return None, f"the saved progress was unreadable ({exc}); kept as {kept.name}, trial run again"


def reusable(settings: Settings, trial: Trial, previous: TrialRecord) -> bool:
    """A trial with an outcome, of the same spec, is not run again (see ``TrialRecord.retryable``)."""
    return (
        not settings.rerun and previous.spec_hash == trial.spec_hash and not previous.retryable(settings.retry_failed)
    )


def agent_work_kept(settings: Settings, trial: Trial, previous: TrialRecord) -> bool:
    """Whether a trial stopped after its agent succeeded can resume at scoring."""
    return (
        not settings.rerun
        and previous.spec_hash == trial.spec_hash
        and previous.status in (Status.SCORE, Status.ERROR)
        and previous.finished_step(Status.AGENT)
        and previous.agent_failure is None
        and previous.commit is not None
        and gitops.branch_commit(settings.workspace.repo_root, previous.branch) == previous.commit
    )


def race_skip(settings: Settings, trial: Trial, previous: TrialRecord | None) -> str | None:
    """Why the sequential race does not need ``trial``, from the other trials' saved records; or None.

    Decided when the trial starts, in whatever process runs it: so xdist workers, a resumed run
    and a CI job all follow the same race.  A trial that already has an outcome of its own
    (retried with ``--explore-retry-failed``) is run again, not replaced by a skip.
    """
    race = settings.race
    if race is None or race.stop != "decided":
        return None
    if previous is not None and previous.status.outcome and previous.skipped_by != SKIPPED_BY_RACE:
        return None
    from ..evidence import racing  # here: a worker of a run without a race never needs it (10 ms to import)

    state = racing.race_of(_others(settings, trial), settings.variant_names, race)
    return racing.skip_reason(state, trial.variant.name)


def budget_spent(settings: Settings, trial: Trial) -> float | None:
    """What the other trials cost so far, when that reaches the experiment-wide ``max_cost_usd``."""
    budget = settings.max_cost_usd
    if budget is None:
        return None
    spent = sum(r.agent.cost_usd for r in _others(settings, trial))
    return spent if spent >= budget else None


def _others(settings: Settings, trial: Trial) -> list[TrialRecord]:
    """The saved records of the experiment's other trials."""
    return load_records(settings.paths, [t.name for t in settings.trials if t.name != trial.name])
