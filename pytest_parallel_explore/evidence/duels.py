"""The race's pairwise tests: does one variant beat another, by score, by solved trials or by a judged test?

Each test of an ordered pair ``(winner, loser)`` sees only the rounds both variants completed and
crosses with probability at most ``level`` when ``winner`` is no better (see :mod:`horizon` for the
thresholds and :mod:`bets` for the bet).  ``by: tests`` runs one such test per judged test at
``level / tests`` (Bonferroni over the tests: their outcomes within a trial may depend on each other).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ..model.spec import By
from . import bets, horizon
from .bets import ProductBet


@dataclasses.dataclass(frozen=True)
class Outcomes:
    """What the race compares, per variant in trial order: scores in [0, 1], and each judged test's pass or fail."""

    scores: Mapping[str, Sequence[float]]
    tests: Mapping[str, Sequence[Mapping[str, bool]]] = dataclasses.field(default_factory=dict)

    def test_names(self) -> list[str]:
        return sorted({name for trials in self.tests.values() for trial in trials for name in trial})


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A crossing: ``winner`` beats ``loser``, with ``strength`` (how far past the threshold) and the words."""

    strength: float
    sentence: str


class Duels:
    """Every ordered pair's test, stepped round by round; built once per replay of the race."""

    def __init__(self, by: By, outcomes: Outcomes, level: float, max_trials: int, calibrated: bool) -> None:
        self.by = by
        self.outcomes = outcomes
        self.tests = outcomes.test_names() if by == "tests" else []
        self.level = level / len(self.tests) if self.tests else level
        self.calibrated = calibrated and max_trials <= horizon.MAX_CALIBRATED
        self.max_trials = max_trials
        self._bets: dict[tuple[str, str, str], ProductBet] = {}
        # 0/1 outcomes per (test, variant), "" for solved, with their running counts: read once, not per round.
        self._binary: dict[tuple[str, str], list[float]] = {}
        if by == "solved":
            self._binary = {("", name): [float(s >= 1.0) for s in scores] for name, scores in outcomes.scores.items()}
        for test in self.tests:
            for name, trials in outcomes.tests.items():
                self._binary[test, name] = [float(trial.get(test, False)) for trial in trials]
        self._prefix = {key: _running_sums(values) for key, values in self._binary.items()}
        self._fisher = horizon.fisher_statistic(max_trials) if self._counts else []
        if self._counts:
            self.threshold = horizon.solved_threshold(max_trials, horizon.EXACT_SHARE * self.level)
        elif self.calibrated:
            self.threshold = horizon.score_threshold(max_trials, self.level)
        else:
            self.threshold = horizon.ville(self.level)

    @property
    def _counts(self) -> bool:
        """0/1 outcomes within the declared horizon: the exact Fisher test; otherwise the product bet."""
        return self.calibrated and self.by in ("solved", "tests")

    def method(self, percent: str) -> str:
        """The test in words, for the report."""
        each = f"each judged test at {percent} / {len(self.tests)} (Bonferroni)" if self.tests else percent
        if self._counts:
            return f"one-sided Fisher exact tests, threshold exact for {self.max_trials} rounds, {each}"
        if self.calibrated:
            return f"two-sample product bets, threshold simulated for {self.max_trials} rounds, {each}"
        return f"two-sample product bets at Ville's threshold (valid at any horizon), {each}"

    def verdict(self, winner: str, loser: str, t: int) -> Verdict | None:
        """Step the pair's test to round ``t`` (when both have it) and say whether it crossed."""
        if self.by == "score":
            return self._scores(winner, loser, t)
        best: Verdict | None = None
        for test in self.tests if self.by == "tests" else [""]:  # no judged test yet: nothing to decide on
            found = self._binary_verdict(winner, loser, t, test)
            if found is not None and (best is None or found.strength > best.strength):
                best = found
        return best

    def _scores(self, winner: str, loser: str, t: int) -> Verdict | None:
        xs, ys = self.outcomes.scores[winner], self.outcomes.scores[loser]
        log_wealth = self._step(("", winner, loser), xs, ys, t)
        if log_wealth is None or log_wealth < self.threshold:
            return None
        n = min(t, len(xs), len(ys))
        return Verdict(
            log_wealth - self.threshold,
            f"{loser}: mean score {_mean(ys[:n]):.2f} against {_mean(xs[:n]):.2f} for {winner} after {n} trials each",
        )

    def _binary_verdict(self, winner: str, loser: str, t: int, test: str) -> Verdict | None:
        won, lost = self._prefix[test, winner], self._prefix[test, loser]
        n = min(t, len(won) - 1, len(lost) - 1)
        if n == 0:
            return None
        a, b = won[n], lost[n]
        if self._counts:
            strength = self._fisher[n][a][b] - self.threshold
        else:
            log_wealth = self._step((test, winner, loser), self._binary[test, winner], self._binary[test, loser], t)
            strength = -1.0 if log_wealth is None else log_wealth - self.threshold
        if strength < 0:
            return None
        if test:
            return Verdict(strength, f"{loser} fails {test} in {n - b}/{n} trials; {winner} passes it in {a}/{n}")
        return Verdict(strength, f"{loser}: solved {b}/{n} trials against {a}/{n} for {winner}")

    def _step(self, key: tuple[str, str, str], xs: Sequence[float], ys: Sequence[float], t: int) -> float | None:
        """The pair's bet after round ``t``, stepping it once when both variants have that round."""
        if t > len(xs) or t > len(ys):
            return None
        bet = self._bets.get(key)
        if bet is None:
            bet = self._bets[key] = ProductBet(0.0 if self.calibrated else bets.VILLE_OPENING)
        while bet.rounds < t:
            bet.step(xs[bet.rounds], ys[bet.rounds])
        return bet.log_wealth


def _running_sums(values: Sequence[float]) -> list[int]:
    sums = [0]
    for value in values:
        sums.append(sums[-1] + int(value))
    return sums


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
