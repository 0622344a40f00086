"""The ranking: trials ordered best first, and its rows built once as values.

The terminal table, ``summary.md`` and ``report.html`` format the same :class:`RankRow` objects
(see ``text.py`` and ``html.py``), so the three always agree on what each row says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..model.baseline import Baseline
from ..model.record import DiffStats, TrialRecord
from .model import Results


def status_text(record: TrialRecord) -> str:
    """The status as the table shows it: "missing (error)" for a trial without an outcome, the attempt when retried."""
    status = record.status
    # A trial still running shows its step; one that ended without an outcome is missing.
    text = status.value if status.outcome or not status.finished else f"missing ({status.value})"
    if record.from_checkpoint:
        text += " (checkpoint)"
    if len(record.attempts) > 1:
        text += f" (attempt {len(record.attempts)})"
    if record.score_cached:
        text += " (score cached)"
    return text


def status_kind(record: TrialRecord) -> str:
    """The colour the page gives the trial's status: ok, bad (failed or unjudged), warn (running) or muted."""
    if record.ok:
        return "ok"
    if not record.status.finished:
        return "warn"
    return "bad" if record.failed else "muted"


@dataclasses.dataclass(frozen=True)
class RankRow:
    """One line of the ranking, as values: the baseline's (``variant`` None) or a trial's.

    ``verdicts`` (counts against the baseline) are set only where there is a score they stand for.
    """

    name: str
    variant: str | None
    rank: int | None
    status: str
    kind: str  # the status's colour, see status_kind
    score: float | None
    tests: tuple[int, int]  # passed, total
    verdicts: Mapping[str, int]
    diff: DiffStats | None
    agent_seconds: float | None
    tokens: int
    cost_usd: float
    warnings: tuple[str, ...]
    flaky: int = 0  # the baseline's flaky tests
    interval: tuple[float, float] | None = None  # the 95% CI of the variant's mean score, when it was repeated
    variant_mean: float | None = None

    @property
    def is_trial(self) -> bool:
        return self.variant is not None

    @property
    def shown_tests(self) -> tuple[int, int] | None:
        """Passed and total, where there is a score they stand for."""
        return self.tests if self.score is not None else None

    @property
    def sort(self) -> dict[str, float]:
        """The numbers the page sorts the columns by; none for the baseline, which stays pinned on top."""
        if not self.is_trial:
            return {}
        diff = self.diff or DiffStats()
        return {
            "rank": float(self.rank) if self.rank is not None else 1e9,
            "score": self.score if self.score is not None else -1e9,
            "tests": float(self.tests[0]),
            "diff": float(diff.insertions + diff.deletions),
            "agent": self.agent_seconds or 0.0,
            "tokens": float(self.tokens),
            "cost": self.cost_usd,
        }


def baseline_row(baseline: Baseline) -> RankRow:
    """The base commit scored as it is, shown above the trials."""
    tests = baseline.tests
    flaky = len(baseline.flaky)
    return RankRow(
        name="baseline",
        variant=None,
        rank=None,
        status="base commit",
        kind="muted",
        score=tests.pass_rate,
        tests=(tests.passed, tests.total),
        verdicts={},
        diff=None,
        agent_seconds=None,
        tokens=0,
        cost_usd=0.0,
        warnings=(f"{flaky} flaky",) if flaky else (),
        flaky=flaky,
    )


def trial_rows(results: Results) -> list[RankRow]:
    """A row per trial, in ranking order."""
    by_variant = {v.name: v for v in results.variants}
    rows = []
    for t in results.trials:
        stats = by_variant.get(t.variant)
        repeated = stats is not None and stats.scores.n > 1
        warnings = [
            w
            for w, present in (
                ("tampering", t.tampering),
                ("suspicious", t.suspicious),
                ("not judged", t.tests.problem),
            )
            if present
        ]
        rows.append(
            RankRow(
                name=t.name,
                variant=t.variant,
                rank=results.ranks[t.name],
                status=status_text(t),
                kind=status_kind(t),
                score=t.score,
                tests=t.tests.judged,  # what the pass rate counts: passed judged tests of those judged
                verdicts=t.verdicts if t.score is not None else {},
                diff=t.diff,
                agent_seconds=t.agent.seconds,
                tokens=t.agent.input_tokens + t.agent.output_tokens,
                cost_usd=t.agent.cost_usd,
                warnings=tuple(warnings),
                interval=(stats.scores.ci_low, stats.scores.ci_high) if stats and repeated else None,
                variant_mean=stats.scores.mean if stats and repeated else None,
            )
        )
    return rows


def ranking(results: Results) -> list[RankRow]:
    """The baseline's row (when there is a baseline), then a row per trial."""
    return ([baseline_row(results.baseline)] if results.baseline else []) + trial_rows(results)
