"""The statistics sections of ``results.json``: each variant's, the comparisons with the best, the race.

Each section is what :mod:`pytest_parallel_explore.evidence` worked out, with
what the reports print alongside it, written to JSON and read back checked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..evidence.counts import clopper_pearson
from ..evidence.race import Elimination, PairInterval, RaceState
from ..evidence.stats import Comparison, DifferingTest, ScoreSummary
from ..model.spec import RaceSpec
from .fields import Fields


def race_spec(fields: Fields) -> RaceSpec:
    """The race's settings, as ``experiment.json`` and the race section of ``results.json`` hold them."""
    return RaceSpec(
        max=fields.integer("max"),
        stop=fields.text("stop"),
        alpha=fields.number("alpha"),
        margin=fields.number("margin"),
        by=fields.text("by", "score"),
    )


@dataclasses.dataclass(frozen=True)
class VariantStats:
    """One variant over its trials: score statistics, the solved rate with its exact interval, pass@k.

    ``retried`` names its trials retried after a failed attempt (every attempt is counted).
    """

    name: str
    trials: list[str]
    retried: list[str]
    scores: ScoreSummary
    solved: int
    solved_ci: tuple[float, float]  # Clopper-Pearson
    pass_at_1: float
    pass_at_k: float
    pass_hat_k: float

    @property
    def k(self) -> int:
        return self.scores.n

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trials": self.trials,
            "retried": self.retried,
            **dataclasses.asdict(self.scores),
            "solved": self.solved,
            "solved_ci_low": self.solved_ci[0],
            "solved_ci_high": self.solved_ci[1],
            "k": self.k,
            "pass_at_1": self.pass_at_1,
            "pass_at_k": self.pass_at_k,
            "pass_hat_k": self.pass_hat_k,
        }

    @classmethod
    def from_json(cls, fields: Fields) -> VariantStats:
        scores = ScoreSummary(
            n=fields.integer("n"),
            **{key: fields.number(key) for key in ("mean", "sd", "min", "max", "ci_low", "ci_high")},
        )
        solved = fields.integer("solved")
        if "solved_ci_low" in fields.data:
            solved_ci = (fields.number("solved_ci_low"), fields.number("solved_ci_high"))
        else:  # written before the solved rate had its interval; it is exact, so it is worked out again
            solved_ci = clopper_pearson(solved, scores.n)
        return cls(
            name=fields.text("name"),
            trials=fields.names("trials"),
            retried=fields.names("retried", []),
            scores=scores,
            solved=solved,
            solved_ci=solved_ci,
            pass_at_1=fields.number("pass_at_1"),
            pass_at_k=fields.number("pass_at_k"),
            pass_hat_k=fields.number("pass_hat_k"),
        )


@dataclasses.dataclass(frozen=True)
class ComparisonEntry:
    """The best variant against another: the trial-level test, and the sentence every report prints.

    The sentence is the comparison's own, plus a note when it includes retried trials.
    """

    result: Comparison
    sentence: str

    def to_json(self) -> dict[str, Any]:
        differ = [dataclasses.asdict(d) for d in self.result.tests_differ]  # a list, as JSON reads it back
        return {**dataclasses.asdict(self.result), "tests_differ": differ, "sentence": self.sentence}

    @classmethod
    def from_json(cls, fields: Fields) -> ComparisonEntry:
        result = Comparison(
            best=fields.text("best"),
            other=fields.text("other"),
            **{key: fields.number(key) for key in ("difference", "ci_low", "ci_high", "p_value", "p_adjusted")},
            comparisons=fields.integer("comparisons"),
            test=fields.choice("test", ("fisher", "permutation")),
            method=fields.text("method"),
            k=fields.integer("k"),
            significant=fields.flag("significant"),
            repeats_needed=fields.integer("repeats_needed", None),
            tests_differ=tuple(
                DifferingTest(
                    test=d.text("test"),
                    **{key: d.integer(key) for key in ("best_passed", "best_trials", "other_passed", "other_trials")},
                )
                for d in fields.entries("tests_differ", required=False)
            ),
        )
        return cls(result, fields.text("sentence"))


@dataclasses.dataclass(frozen=True)
class RaceSection:
    """The sequential race as the reports show it: its settings, where it stands, the trials it skipped."""

    spec: RaceSpec
    state: RaceState
    skipped: list[str]

    @property
    def trials_total(self) -> int:
        return sum(self.state.trials.values())

    @property
    def trials_max(self) -> int:
        return self.spec.max * len(self.state.trials)

    def to_json(self) -> dict[str, Any]:
        state = self.state
        return {
            **dataclasses.asdict(self.spec),
            "trials": dict(state.trials),
            "trials_total": self.trials_total,
            "trials_max": self.trials_max,
            "remaining": list(state.remaining),
            "eliminated": [dataclasses.asdict(e) for e in state.eliminated],
            "decided": state.decided,
            "winner": state.winner,
            "reason": state.reason,
            "intervals": [dataclasses.asdict(i) for i in state.intervals],
            "method": state.method,
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, fields: Fields) -> RaceSection:
        spec = race_spec(fields)
        state = RaceState(
            remaining=tuple(fields.names("remaining")),
            eliminated=tuple(
                Elimination(e.text("variant"), e.text("by"), e.integer("trials"), e.text("sentence"))
                for e in fields.entries("eliminated")
            ),
            trials=fields.counts("trials"),
            decided=fields.choice("decided", (None, "one_left", "equivalent", "max")),
            reason=fields.text("reason"),
            intervals=tuple(
                PairInterval(i.text("first"), i.text("second"), i.integer("rounds"), i.number("low"), i.number("high"))
                for i in fields.entries("intervals")
            ),
            max_trials=spec.max,
            method=fields.text("method", ""),
        )
        return cls(spec, state, fields.names("skipped"))
