"""Statistics over repeated trials: is the best variant really better, or was it luck?

Pure functions over plain data (lists of scores, ``{node_id: passed}`` mappings), standard library
only, so the report code can call them without numpy or scipy.  Everything random takes a ``seed``
and uses its own ``random.Random(seed)``: the same results always give the same intervals and
p-values, in ``summary.md`` and in ``report.html`` alike.

The unit of analysis is the trial: the tests of one trial share its worktree and its agent run, so
they are not independent samples, and per-test outcomes are only ever described, never tested.

- per variant: :func:`summarize` (mean, sd, min/max, bootstrap CI of the mean), and from
  :mod:`.counts` the exact interval of the solved rate, pass@k and pass^k;
- best against each other variant: :func:`compare_to_best`, which builds one :func:`compare` per
  other variant (:func:`.counts.fisher_exact` on solved trials when every score is 0 or 1, else
  :func:`permutation_test` on the scores; :func:`bootstrap_difference`, :func:`repeats_needed`,
  the descriptive :func:`per_test_differences`) and adjusts the p-values with :func:`holm`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Literal

from .counts import fisher_exact, is_int

#: Up to this many ways of splitting the pooled scores, :func:`permutation_test` enumerates them all.
EXACT_SPLITS_LIMIT = 20_000

# Two means closer than this are "as extreme" as each other: sums of floats taken in another order
# differ in the last bits, and such a split must count towards the p-value.
_TIE_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class ScoreSummary:
    """One variant's trial scores: sample size, mean, sample sd, range and a bootstrap CI of the mean."""

    n: int
    mean: float
    sd: float
    min: float
    max: float
    ci_low: float
    ci_high: float


@dataclasses.dataclass(frozen=True)
class VariantTrials:
    """One variant's trials, in trial order: each trial's score and, when known, its per-test outcomes.

    ``tests[i]`` maps test node id -> passed for trial ``i``; ``tests`` is empty when the outcomes
    are unknown (e.g. scores from a metric command).
    """

    scores: Sequence[float]
    tests: Sequence[Mapping[str, bool]] = ()


@dataclasses.dataclass(frozen=True)
class DifferingTest:
    """A test that passed in a different share of the two variants' trials (descriptive, not a test)."""

    test: str
    best_passed: int
    best_trials: int
    other_passed: int
    other_trials: int


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The best variant against another: difference of mean scores with its CI, and a trial-level test.

    ``p_value`` is the test's own p-value; ``p_adjusted`` is Holm's adjustment over the ``comparisons``
    made against the best, and ``significant`` means ``p_adjusted < alpha``.
    """

    best: str
    other: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    comparisons: int
    test: Literal["fisher", "permutation"]
    method: str
    k: int
    significant: bool
    repeats_needed: int | None
    tests_differ: tuple[DifferingTest, ...] = ()

    def sentence(self) -> str:
        """One line for the summary, e.g. ``a beats b: +0.21 [0.08, 0.33], p = 0.01 (permutation test ...)``."""
        holm = f"; Holm-adjusted over {self.comparisons} comparisons" if self.comparisons > 1 else ""
        p = f"{_format_p(self.p_adjusted)} ({self.method}{holm})"
        if self.significant:
            winner, loser = self.best, self.other
            difference, low, high = self.difference, self.ci_low, self.ci_high
            if difference < 0:
                # "best" is the caller's ranking; the sentence must still name the variant that did better.
                winner, loser = self.other, self.best
                difference, low, high = -difference, -high, -low
            return f"{winner} beats {loser}: {difference:+.2f} [{low:.2f}, {high:.2f}], {p}"
        head = f"{self.best} vs {self.other}: no significant difference at k = {self.k}, {p}; "
        if self.repeats_needed is not None:
            return head + f"about {self.repeats_needed} repeats per variant would likely tell them apart"
        if self.difference == 0:
            return head + "no difference observed"
        return head + "too few trials to estimate how many repeats would tell them apart"


_METHODS = {"fisher": "Fisher's exact test on solved trials", "permutation": "permutation test on trial scores"}


def summarize(
    scores: Sequence[float], *, seed: int = 0, confidence: float = 0.95, resamples: int = 2000
) -> ScoreSummary:
    """Mean, sample sd (0 for one trial), min/max and a percentile bootstrap CI of the mean.

    The CI is Efron's percentile bootstrap: resample the scores with replacement ``resamples``
    times (``random.Random(seed)``, so it is reproducible) and take the ``(1 - confidence) / 2``
    and ``(1 + confidence) / 2`` quantiles of the resampled means.  With one trial, or all
    scores equal, the interval is the point: there is no spread to resample.
    """
    values = _checked_scores(scores, "scores")
    _check_confidence(confidence, resamples)
    mean = statistics.fmean(values)
    n = len(values)
    sd = statistics.stdev(values) if n >= 2 else 0.0
    low, high = min(values), max(values)
    if low == high:
        return ScoreSummary(n=n, mean=mean, sd=sd, min=low, max=high, ci_low=mean, ci_high=mean)
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=n)) for _ in range(resamples))
    ci_low, ci_high = _percentile_interval(means, confidence)
    return ScoreSummary(n=n, mean=mean, sd=sd, min=low, max=high, ci_low=ci_low, ci_high=ci_high)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the order given.

    With the p-values sorted ``p_(1) <= ... <= p_(m)``, the adjusted ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting where the adjusted value is below
    ``alpha`` controls the family-wise error rate at ``alpha`` under any dependence.
    """
    for p in p_values:
        if not 0 <= p <= 1:
            raise ValueError(f"holm: p-values must be between 0 and 1, got {p!r}")
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for position, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running
    return adjusted


def per_test_differences(
    best: Sequence[Mapping[str, bool]], other: Sequence[Mapping[str, bool]]
) -> tuple[DifferingTest, ...]:
    """Tests both variants ran that passed in a different share of their trials, largest gap first.

    Descriptive only: it says which tests tell the variants apart and how often, not whether the
    gap is significant (the tests of one trial are not independent samples).
    """

    def counts(trials: Sequence[Mapping[str, bool]]) -> dict[str, tuple[int, int]]:
        tally: dict[str, tuple[int, int]] = {}
        for tests in trials:
            for node_id, passed in tests.items():
                done, runs = tally.get(node_id, (0, 0))
                tally[node_id] = (done + bool(passed), runs + 1)
        return tally

    best_counts, other_counts = counts(best), counts(other)
    differences = [
        DifferingTest(node_id, *best_counts[node_id], *other_counts[node_id])
        for node_id in sorted(best_counts.keys() & other_counts.keys())
        if best_counts[node_id][0] * other_counts[node_id][1] != other_counts[node_id][0] * best_counts[node_id][1]
    ]
    differences.sort(key=lambda d: -abs(d.best_passed / d.best_trials - d.other_passed / d.other_trials))
    return tuple(differences)


def permutation_test(a: Sequence[float], b: Sequence[float], *, seed: int = 0, resamples: int = 10000) -> float:
    """Two-sided permutation p-value for the difference of means of ``a`` and ``b``.

    The share of ways of splitting the pooled scores into groups of ``len(a)`` and ``len(b)``
    whose difference of means is at least as large, in absolute value, as the observed one
    (Fisher's randomization test).  Exact when there are at most :data:`EXACT_SPLITS_LIMIT`
    splits; otherwise ``resamples`` random splits from ``random.Random(seed)``, with the
    ``(count + 1) / (resamples + 1)`` correction so the estimate is never 0 (Phipson & Smyth 2010).
    """
    a_values = _checked_scores(a, "a")
    b_values = _checked_scores(b, "b")
    if not is_int(resamples) or resamples < 1:
        raise ValueError(f"permutation_test: resamples must be an int >= 1, got {resamples!r}")
    n_a, n_b = len(a_values), len(b_values)
    pooled = a_values + b_values
    total = math.fsum(pooled)

    def difference(sum_a: float) -> float:
        return abs(sum_a / n_a - (total - sum_a) / n_b)

    observed = difference(math.fsum(a_values))
    threshold = observed - _TIE_TOLERANCE * max(1.0, observed)
    splits = math.comb(n_a + n_b, n_a)
    if splits <= EXACT_SPLITS_LIMIT:
        extreme = sum(
            difference(math.fsum(pooled[i] for i in group)) >= threshold
            for group in itertools.combinations(range(n_a + n_b), n_a)
        )
        return extreme / splits
    rng = random.Random(seed)
    extreme = 0
    for _ in range(resamples):
        rng.shuffle(pooled)
        extreme += difference(math.fsum(pooled[:n_a])) >= threshold
    return (extreme + 1) / (resamples + 1)


def bootstrap_difference(
    a: Sequence[float], b: Sequence[float], *, seed: int = 0, confidence: float = 0.95, resamples: int = 2000
) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` and its percentile bootstrap CI, as ``(difference, low, high)``.

    Each group is resampled with replacement independently (the two variants' trials are
    separate samples), with ``random.Random(seed)`` for reproducibility (Efron & Tibshirani 1993).
    """
    a_values = _checked_scores(a, "a")
    b_values = _checked_scores(b, "b")
    _check_confidence(confidence, resamples)
    difference = statistics.fmean(a_values) - statistics.fmean(b_values)
    if min(a_values) == max(a_values) and min(b_values) == max(b_values):
        return difference, difference, difference
    rng = random.Random(seed)
    n_a, n_b = len(a_values), len(b_values)
    differences = sorted(
        statistics.fmean(rng.choices(a_values, k=n_a)) - statistics.fmean(rng.choices(b_values, k=n_b))
        for _ in range(resamples)
    )
    low, high = _percentile_interval(differences, confidence)
    return difference, low, high


def repeats_needed(a: Sequence[float], b: Sequence[float], *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Trials per variant that would likely detect the observed difference of means.

    The normal-approximation sample size for a two-sided two-sample test,
    ``n = 2 (z_{1-alpha/2} + z_{power})^2 sigma^2 / delta^2``, with ``delta`` the observed
    difference and ``sigma^2`` the pooled sample variance; at least 2.  ``None`` when there is
    no difference to detect, or too few trials (fewer than 3 in all) to estimate ``sigma``.
    """
    a_values = _checked_scores(a, "a")
    b_values = _checked_scores(b, "b")
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise ValueError(f"repeats_needed: {name} must be between 0 and 1 (exclusive), got {value!r}")
    delta = statistics.fmean(a_values) - statistics.fmean(b_values)
    degrees = len(a_values) + len(b_values) - 2
    if delta == 0 or degrees < 1:
        return None
    squares = sum(
        (len(values) - 1) * statistics.variance(values) for values in (a_values, b_values) if len(values) >= 2
    )
    pooled_variance = squares / degrees
    normal = statistics.NormalDist()
    z = normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)
    return max(2, math.ceil(2 * z * z * pooled_variance / (delta * delta)))


def compare(
    best_name: str,
    best: VariantTrials,
    other_name: str,
    other: VariantTrials,
    *,
    seed: int = 0,
    alpha: float = 0.05,
) -> Comparison:
    """Compare the best variant with another: difference of mean scores, its CI, and a trial-level p-value.

    When every trial of both scored 0 or 1 (solved or not), the test is Fisher's exact test on the
    solved counts; otherwise it is the permutation test on the scores.  Either way each trial is one
    observation.  The p-value is not adjusted here (``p_adjusted == p_value``): :func:`compare_to_best`
    adjusts a family of comparisons.
    """
    for name, trials in ((best_name, best), (other_name, other)):
        if not trials.scores:
            raise ValueError(f"compare: variant {name!r} has no trial scores")
        if trials.tests and len(trials.tests) != len(trials.scores):
            raise ValueError(
                f"compare: variant {name!r} has {len(trials.scores)} scores but per-test outcomes "
                f"for {len(trials.tests)} trials"
            )
    difference, ci_low, ci_high = bootstrap_difference(best.scores, other.scores, seed=seed)
    test: Literal["fisher", "permutation"]
    if all(score in (0, 1) for score in (*best.scores, *other.scores)):
        test = "fisher"
        p_value = fisher_exact(
            sum(s == 1 for s in best.scores), len(best.scores), sum(s == 1 for s in other.scores), len(other.scores)
        )
    else:
        test = "permutation"
        p_value = permutation_test(best.scores, other.scores, seed=seed)
    return Comparison(
        best=best_name,
        other=other_name,
        difference=difference,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        p_adjusted=p_value,
        comparisons=1,
        test=test,
        method=_METHODS[test],
        k=min(len(best.scores), len(other.scores)),
        significant=p_value < alpha,
        repeats_needed=repeats_needed(best.scores, other.scores, alpha=alpha),
        tests_differ=per_test_differences(best.tests, other.tests),
    )


def compare_to_best(
    best_name: str, variants: Mapping[str, VariantTrials], *, seed: int = 0, alpha: float = 0.05
) -> list[Comparison]:
    """:func:`compare` the best variant with each other one (in ``variants``' order), Holm-adjusted.

    Choosing the best and then testing it against every other is a family of ``len(variants) - 1``
    tests; Holm's adjustment keeps the chance of any false "beats" at most ``alpha``.
    """
    if best_name not in variants:
        raise ValueError(f"compare_to_best: the best variant {best_name!r} is not among {sorted(variants)}")
    raw = [
        compare(best_name, variants[best_name], name, trials, seed=seed, alpha=alpha)
        for name, trials in variants.items()
        if name != best_name
    ]
    adjusted = holm([c.p_value for c in raw])
    return [
        dataclasses.replace(c, p_adjusted=p, comparisons=len(raw), significant=p < alpha)
        for c, p in zip(raw, adjusted, strict=True)
    ]


def _format_p(p: float) -> str:
    """``p = 0.041`` (two significant figures), or ``p < 0.001``."""
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}"


def _percentile_interval(sorted_values: Sequence[float], confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    return _quantile(sorted_values, tail), _quantile(sorted_values, 1 - tail)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (Hyndman & Fan type 7, numpy's default)."""
    position = q * (len(sorted_values) - 1)
    below = math.floor(position)
    above = min(below + 1, len(sorted_values) - 1)
    fraction = position - below
    return sorted_values[below] + (sorted_values[above] - sorted_values[below]) * fraction


def _checked_scores(scores: Sequence[float], name: str) -> list[float]:
    values = [float(score) for score in scores]
    if not values:
        raise ValueError(f"{name}: need at least one score, got none")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"{name}: scores must be finite numbers, got {list(scores)!r}")
    return values


def _check_confidence(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    if not is_int(resamples) or resamples < 1:
        raise ValueError(f"resamples must be an int >= 1, got {resamples!r}")
