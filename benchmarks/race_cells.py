"""One cell of the sequential-race benchmark: simulated experiments with known score distributions.

The race is the plugin's own procedure (:func:`replay`, what :func:`race_state` runs), not a copy.
Variants are named in a random order in every simulated experiment, so the race's tie-break (the
name) favours no one; fixed-n breaks ties at random.  The Garivier-Kaufmann bound is the lower bound
on the expected trials of any procedure that finds the best of Bernoulli variants with error at most
``delta`` (Garivier & Kaufmann, "Optimal best arm identification with fixed confidence", COLT 2016).
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Callable, Iterator, Sequence
from typing import overload

from pytest_parallel_explore.evidence.counts import fisher_exact
from pytest_parallel_explore.evidence.duels import By, Outcomes
from pytest_parallel_explore.evidence.race import replay
from pytest_parallel_explore.evidence.stats import holm, permutation_test

Draw = Callable[[random.Random], float]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Variants with these score distributions (``means`` their true means), raced ``by`` up to ``max_trials``."""

    name: str
    draws: tuple[Draw, ...]
    means: tuple[float, ...]
    by: By
    max_trials: int


def bernoulli(p: float) -> tuple[Draw, float]:
    return (lambda rng: float(rng.random() < p)), p


def pass_rate(p: float, tests: int = 10) -> tuple[Draw, float]:
    """The share of ``tests`` independent tests that pass, each with probability ``p``."""
    return (lambda rng: sum(rng.random() < p for _ in range(tests)) / tests), p


def beta(a: float, b: float) -> tuple[Draw, float]:
    return (lambda rng: rng.betavariate(a, b)), a / (a + b)


def uniform() -> tuple[Draw, float]:
    return (lambda rng: rng.random()), 0.5


def scenario(name: str, variants: Sequence[tuple[Draw, float]], by: By, max_trials: int) -> Scenario:
    return Scenario(name, tuple(d for d, _ in variants), tuple(m for _, m in variants), by, max_trials)


class Lazy(Sequence[float]):
    """Scores drawn when first read: a race without a cap reads only as many as it needs."""

    def __init__(self, draw: Draw, rng: random.Random, length: int) -> None:
        self._draw, self._rng, self._length, self._drawn = draw, rng, length, list[float]()

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        last = max(range(self._length)[index], default=-1) if isinstance(index, slice) else index
        while len(self._drawn) <= last:
            self._drawn.append(self._draw(self._rng))
        return self._drawn[index]

    def __iter__(self) -> Iterator[float]:
        return (self[i] for i in range(self._length))


def _scores(draw: Draw, rng: random.Random, max_trials: int) -> Sequence[float]:
    """A variant's scores: drawn up front for a capped race, when read for a race (practically) without one."""
    return Lazy(draw, rng, max_trials) if max_trials > LAZY_ABOVE else [draw(rng) for _ in range(max_trials)]


#: Races longer than this draw their scores lazily.
LAZY_ABOVE = 100


@dataclasses.dataclass
class Tally:
    """What the simulated races of one cell did."""

    trials: list[int] = dataclasses.field(default_factory=list)
    early: int = 0  # stopped before every variant had max_trials trials
    correct: int = 0  # declared the (unique) best
    wrong: int = 0  # declared a variant worse than the best
    declared: int = 0
    best_out: int = 0  # eliminated a variant tied for best
    fixed_correct: int = 0  # fixed-n at max_trials declared the best

    def summary(self, sims: int) -> dict[str, float]:
        n = len(self.trials)
        return {
            "sims": sims,
            "mean": statistics.fmean(self.trials),
            "se": statistics.stdev(self.trials) / math.sqrt(n) if n > 1 else 0.0,
            "median": statistics.median(self.trials),
            "early": self.early / sims,
            "correct": self.correct / sims,
            "wrong": self.wrong / sims,
            "declared": self.declared,
            "best_out": self.best_out / sims,
            "fixed_correct": self.fixed_correct / sims,
        }


def run_cell(cell: Scenario, sims: int, seed: str, *, fixed: bool = False, alpha: float = 0.05) -> dict[str, float]:
    """Race ``sims`` simulated experiments of ``cell``; with ``fixed``, fixed-n at ``max`` on the same trials."""
    rng = random.Random(seed)
    best = max(cell.means)
    tally = Tally()
    k = len(cell.draws)
    for _ in range(sims):
        order = rng.sample(range(k), k)  # variant i is named v{order[i]}
        names = [f"v{order[i]}" for i in range(k)]
        scores = {names[i]: _scores(cell.draws[i], rng, cell.max_trials) for i in range(k)}
        means = {names[i]: cell.means[i] for i in range(k)}
        run = replay(
            Outcomes(scores), alpha=alpha, margin=0.0, max_trials=cell.max_trials, by=cell.by, horizon=cell.max_trials
        )
        total = sum(run.trials.values())
        tally.trials.append(total)
        tally.early += total < k * cell.max_trials
        if run.decided == "one_left":
            tally.declared += 1
            top = means[run.remaining[0]] == best
            tally.correct += top and cell.means.count(best) == 1
            tally.wrong += not top
        tally.best_out += any(means[e.variant] == best for e in run.eliminated)
        if fixed:
            full = {name: list(values[: cell.max_trials]) for name, values in scores.items()}
            winner, declared = fixed_n(full, alpha, rng, cell.by)
            tally.fixed_correct += declared and means[winner] == best and cell.means.count(best) == 1
    return tally.summary(sims)


def fixed_n(scores: dict[str, list[float]], alpha: float, rng: random.Random, by: By) -> tuple[str, bool]:
    """The best mean (ties broken at random), declared when it beats every other variant (Holm-adjusted).

    The tests are those the report uses: Fisher's exact test on solved trials, else the permutation test.
    """
    means = {name: statistics.fmean(values) for name, values in scores.items()}
    top = max(means.values())
    best = rng.choice(sorted(name for name, mean in means.items() if mean == top))
    p_values = [_p_value(scores[best], scores[other], by) for other in sorted(scores) if other != best]
    return best, all(p < alpha for p in holm(p_values))


def _p_value(a: Sequence[float], b: Sequence[float], by: By) -> float:
    if by == "solved":
        return fisher_exact(sum(v >= 1 for v in a), len(a), sum(v >= 1 for v in b), len(b))
    return permutation_test(a, b, resamples=200)


def fixed_power(cell: Scenario, n: int, sims: int, seed: str, alpha: float = 0.05) -> float:
    """P(fixed-n with ``n`` trials per variant declares the true best)."""
    rng = random.Random(seed)
    best = max(cell.means)
    hits = 0
    for _ in range(sims):
        order = rng.sample(range(len(cell.draws)), len(cell.draws))
        scores = {f"v{order[i]}": [draw(rng) for _ in range(n)] for i, draw in enumerate(cell.draws)}
        winner, declared = fixed_n(scores, alpha, rng, cell.by)
        hits += declared and cell.means[order.index(int(winner[1:]))] == best
    return hits / sims


def kl(p: float, q: float) -> float:
    """Bernoulli Kullback-Leibler divergence ``kl(p, q)``."""
    p, q = min(max(p, 1e-15), 1 - 1e-15), min(max(q, 1e-15), 1 - 1e-15)
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def garivier_kaufmann(means: Sequence[float], delta: float) -> float:
    """``T*(mu) kl(delta, 1 - delta)``: expected trials no delta-correct procedure beats (Bernoulli variants).

    ``1 / T* = max_w min_a [w_1 kl(mu_1, m_a) + w_a kl(mu_a, m_a)]``, ``m_a`` the ``w``-weighted mean of
    the pair, solved as in the paper's Theorem 5: for each level ``y`` the weights ``x_a(y)`` reaching it,
    then the ``y`` at which ``sum_a kl(mu_1, m_a) / kl(mu_a, m_a) = 1``.
    """
    top, *others = sorted(means, reverse=True)

    def g(a: float, x: float) -> float:
        m = (top + x * a) / (1 + x)
        return kl(top, m) + x * kl(a, m)

    def x_of(a: float, y: float) -> float:
        low, high = 0.0, 1.0
        while g(a, high) < y:
            high *= 2
        for _ in range(100):
            low, high = ((low + high) / 2, high) if g(a, (low + high) / 2) < y else (low, (low + high) / 2)
        return (low + high) / 2

    def balance(y: float) -> float:
        total = 0.0
        for a in others:
            x = x_of(a, y)
            m = (top + x * a) / (1 + x)
            total += kl(top, m) / kl(a, m)
        return total

    low, high = 0.0, kl(top, max(others))
    for _ in range(100):
        low, high = ((low + high) / 2, high) if balance((low + high) / 2) < 1 else (low, (low + high) / 2)
    y = (low + high) / 2
    return (1 + sum(x_of(a, y) for a in others)) / y * kl(delta, 1 - delta)
