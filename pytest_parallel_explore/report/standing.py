"""Where each trial stands: the ranking order and the rank numbers, computed from the records.

Ranks are never stored on a record: a record says what a trial did, and its
rank depends on every other trial of the experiment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..model.record import Status, TrialRecord


def _standing(r: TrialRecord) -> tuple[Any, ...]:
    return (r.score is None, -(r.score or 0.0), r.status is not Status.DONE)


def rank(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The records best first: scored trials by score, finished before failed, unscored ones last.

    Equal ones are listed by tests passed, then lower cost and agent time.
    """
    return sorted(records, key=lambda r: (*_standing(r), -r.tests.passed, r.agent.cost_usd, r.agent.seconds, r.name))


def ranks(ordered: Sequence[TrialRecord]) -> dict[str, int | None]:
    """Each trial's rank in ``ordered`` (as :func:`rank` gives it): equal ones share one ("1, 1, 3"), unscored none."""
    numbers: dict[str, int | None] = {}
    previous: tuple[TrialRecord, int | None] | None = None
    for position, record in enumerate(ordered, 1):
        tied = previous is not None and _standing(previous[0]) == _standing(record)
        number = None if record.score is None else (previous[1] if tied and previous else position)
        numbers[record.name] = number
        previous = (record, number)
    return numbers
