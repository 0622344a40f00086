"""Infrastructure errors per variant: how often the pipeline broke, and whether one variant breaks it more.

An ``error`` attempt (git, the suite could not start, ``score.setup`` failed) has no outcome and is
left out of the statistics.  That is fair only when errors strike every variant alike: a variant
whose code crashes the scoring more often would have its worst attempts dropped.  So each variant's
rate is reported, and a warning names a variant whose rate differs clearly from the others' (Fisher's
exact test of its errors against theirs, p below ``WARN_BELOW``).  Interrupted attempts (Ctrl-C, a
killed worker) are not the variant's doing and are not counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ..model.record import Status, TrialRecord
from .counts import fisher_exact

#: A variant's error rate is flagged when Fisher's exact test against the others' gives a p-value below this.
WARN_BELOW = 0.01


@dataclasses.dataclass(frozen=True)
class ErrorRate:
    """``errors`` of the ``attempts`` of ``variant`` broke in the pipeline; ``warning`` when that stands out."""

    variant: str
    errors: int
    attempts: int
    warning: str | None = None

    @property
    def rate(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0

    def sentence(self) -> str:
        share = f"{self.rate:.0%}"
        return f"{self.variant}: {self.errors} of {self.attempts} attempts ended in an infrastructure error ({share})"


def error_rates(records: Iterable[TrialRecord]) -> list[ErrorRate]:
    """Per variant (by name), its finished attempts and those that were infrastructure errors."""
    counts: dict[str, list[int]] = {}
    for record in records:
        tally = counts.setdefault(record.variant, [0, 0])
        for attempt in _finished(record):
            interrupted = str(attempt.get("reason") or "").startswith("interrupted")
            if attempt["status"] == Status.ERROR.value and not interrupted:
                tally[0] += 1
            tally[1] += 1
    total_errors = sum(e for e, _ in counts.values())
    total = sum(n for _, n in counts.values())
    rates = []
    for variant, (errors, attempts) in sorted(counts.items()):
        others, others_attempts = total_errors - errors, total - attempts
        warning = None
        if attempts and others_attempts and errors + others:
            p = fisher_exact(errors, attempts, others, others_attempts)
            if p < WARN_BELOW:
                mine, theirs = f"{errors / attempts:.0%}", f"{others / others_attempts:.0%}"
                warning = (
                    f"{variant} had infrastructure errors in {errors} of {attempts} attempts ({mine}), "
                    f"the others in {others} of {others_attempts} ({theirs}; Fisher p = {p:.3g}): "
                    "its errored attempts, left out of the statistics, may favour or hurt it"
                )
        rates.append(ErrorRate(variant, errors, attempts, warning))
    return rates


def _finished(record: TrialRecord) -> list[dict[str, object]]:
    """The record's attempts that ran (a trial skipped by the race or the budget ran nothing)."""
    return [a for a in record.attempts if a["status"] != Status.SKIPPED.value]
