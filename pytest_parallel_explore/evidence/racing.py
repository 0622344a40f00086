"""The sequential race over saved records: which trials it counted, which it still needs, what it decided.

:mod:`race` is the procedure on plain scores; this module feeds it the records of an experiment. It
is used where a trial starts (any process: the race is recomputed from the saved records, so an xdist
worker, a resumed run and a merge of CI jobs all agree) and where the report is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..model.record import Status, TrialRecord
from ..model.spec import RaceSpec
from .race import RaceState, race_state


def counted(record: TrialRecord) -> bool:
    """Whether a trial enters the race: it has an outcome and actually ran (a skipped one did not)."""
    return record.status.outcome and record.status is not Status.SKIPPED


def race_scores(records: Iterable[TrialRecord], variants: Sequence[str]) -> dict[str, list[float]]:
    """Each variant's scores in round order, up to its first trial not finished yet (an unscored trial scores 0).

    A trial still running, or not started, ends its variant's scores for now: a later round that
    finished first waits for it, so every view of the race while trials run is a prefix of the final
    one, and a trial decides at its start what the report will say.  A trial without an outcome
    (error) or skipped is passed over.  Scores are clipped to [0, 1], the range the race's confidence
    sequences assume: the default score (the pass rate) lies there; a weighted score outside it counts
    as its nearest end.
    """
    by_round: dict[str, dict[int, TrialRecord]] = {name: {} for name in variants}
    for record in records:
        if record.variant in by_round:
            by_round[record.variant][record.round] = record
    scores: dict[str, list[float]] = {}
    for name, trials in by_round.items():
        scores[name] = []
        for k in range(1, max(trials, default=0) + 1):
            trial = trials.get(k)
            if trial is None or not trial.status.finished:
                break
            if counted(trial):
                scores[name].append(min(1.0, max(0.0, trial.score or 0.0)))
    return scores


def race_of(records: Iterable[TrialRecord], variants: Sequence[str], race: RaceSpec) -> RaceState:
    """The race's state over ``records``, with every variant of the experiment in it."""
    return race_state(race_scores(records, variants), alpha=race.alpha, margin=race.margin, max_trials=race.max)


def skip_reason(state: RaceState, variant: str) -> str | None:
    """Why ``variant``'s next trial is not needed, or None when it is."""
    if state.should_run(variant):
        return None
    for elimination in state.eliminated:
        if elimination.variant == variant:
            return elimination.sentence
    if state.decided is not None:
        return f"race decided: {state.reason}"
    return f"{variant} has its {state.max_trials} trials"
