"""The sequential race over saved records: which trials it counted, which it still needs, what it decided.

:mod:`race` is the procedure on plain scores; this module feeds it the records of an experiment. It
is used where a trial starts (any process: the race is recomputed from the saved records, so an xdist
worker, a resumed run and a merge of CI jobs all agree) and where the report is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from ..model.record import OUTCOMES, Status, TrialRecord
from ..model.spec import By, RaceSpec
from .race import RaceState, race_state


def counted(record: TrialRecord) -> bool:
    """Whether a trial enters the race: it has an outcome and actually ran (a skipped one did not)."""
    return record.status.outcome and record.status is not Status.SKIPPED


def attempts_counted(record: TrialRecord) -> list[dict[str, Any]]:
    """Every finished attempt of the trial with an outcome, oldest first, the record's own last.

    A retried failure is still a failure: keeping only the last attempt would choose among outcomes
    by their value.  An attempt broken by the pipeline (``error``) or interrupted has no outcome and
    is not counted here (see :mod:`errors` for its rate).  Each attempt is a fresh independent run, so
    the variant's attempts in this order are still independent draws of its outcome.
    """
    earlier = record.attempts if record.status is Status.SKIPPED else record.attempts[:-1]
    counted_attempts = [a for a in earlier if Status(a["status"]) in OUTCOMES and a["status"] != Status.SKIPPED.value]
    if counted(record):
        counted_attempts.append({"score": record.score, "solved": record.solved, "passed_tests": record.passed_tests})
    return counted_attempts


def race_outcomes(
    records: Iterable[TrialRecord], variants: Sequence[str], by: By = "score"
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, bool]]]]:
    """Each variant's outcomes in round order, up to its first trial not finished yet.

    Scores (or, ``by: solved``, 1 for a solved attempt and 0 otherwise) and, ``by: tests``, each
    judged test's pass or fail.  A trial still running, or not started, ends its variant's outcomes
    for now: a later round that finished first waits for it, so every view of the race while trials
    run is a prefix of the final one, and a trial decides at its start what the report will say.
    An unscored attempt scores 0 and passes no test.  Scores are clipped to [0, 1], the range the
    race's tests assume: the default score (the pass rate) lies there; a weighted score outside it
    counts as its nearest end.
    """
    by_round: dict[str, dict[int, TrialRecord]] = {name: {} for name in variants}
    for record in records:
        if record.variant in by_round:
            by_round[record.variant][record.round] = record
    attempts: dict[str, list[dict[str, Any]]] = {}
    for name, trials in by_round.items():
        attempts[name] = []
        for k in range(1, max(trials, default=0) + 1):
            trial = trials.get(k)
            if trial is None or not trial.status.finished:
                break
            attempts[name].extend(attempts_counted(trial))
    judged = _judged_tests(r for trials in by_round.values() for r in trials.values())
    scores = {name: [_value(a, by) for a in runs] for name, runs in attempts.items()}
    tests = {name: [_passed(a, judged) for a in runs] for name, runs in attempts.items()} if by == "tests" else {}
    return scores, tests


def race_of(records: Iterable[TrialRecord], variants: Sequence[str], race: RaceSpec) -> RaceState:
    """The race's state over ``records``, with every variant of the experiment in it.

    Its thresholds hold for the ``max`` the race was declared with: the smallest one its trials
    recorded, when ``max`` was raised since (the race then falls back to Ville's threshold, and says so).
    """
    records = list(records)
    by = cast(By, race.by)
    scores, tests = race_outcomes(records, variants, by)
    declared = [r.race_horizon for r in records if r.race_horizon is not None and counted(r)]
    horizon = min(declared, default=race.max)
    return race_state(
        scores, alpha=race.alpha, margin=race.margin, max_trials=race.max, by=by, tests=tests, horizon=horizon
    )


def _judged_tests(records: Iterable[TrialRecord]) -> list[str]:
    """The tests the baseline judges, as the scored trials recorded them (the agent's own tests are not)."""
    return sorted({test for r in records for test, verdict in r.tests.verdicts.items() if verdict != "added"})


def _value(attempt: Mapping[str, Any], by: By) -> float:
    if by == "solved":
        return 1.0 if attempt.get("solved") else 0.0
    return min(1.0, max(0.0, attempt.get("score") or 0.0))


def _passed(attempt: Mapping[str, Any], judged: Sequence[str]) -> dict[str, bool]:
    passed = set(attempt.get("passed_tests") or ())
    return {test: test in passed for test in judged}


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
