"""Statistics over repeated trials: is the best variant really better, or was it luck?

Pure functions over plain data (lists of scores, ``{node_id: passed}`` mappings), standard library
only, so the report code can call them without numpy or scipy.  Everything random takes a ``seed``
and uses its own ``random.Random(seed)``: the same results always give the same intervals and
p-values, in ``summary.md`` and in ``report.html`` alike.

- per variant: :func:`summarize` (mean, sd, min/max, bootstrap CI of the mean), :func:`pass_at_k`
  and :func:`pass_hat_k` (counting a trial as solved when its suite passes fully);
- best against each other variant: :func:`compare`, built from :func:`paired_outcomes` +
  :func:`mcnemar_exact` (trials that pair) or :func:`permutation_test` (scores otherwise),
  :func:`bootstrap_difference` and :func:`repeats_needed`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Literal

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
class Comparison:
    """The best variant against another: difference of mean scores with its CI, and a test of it."""

    best: str
    other: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    test: Literal["mcnemar", "permutation"]
    k: int
    significant: bool
    repeats_needed: int | None

    def sentence(self) -> str:
        """One line for the summary, e.g. ``a beats b: +0.21 [0.08, 0.33], p = 0.01``."""
        p = _format_p(self.p_value)
        if self.significant:
            winner, loser = self.best, self.other
            difference, low, high = self.difference, self.ci_low, self.ci_high
            if difference < 0:
                # "best" is the caller's ranking; the sentence must still name the variant that did better.
                winner, loser = self.other, self.best
                difference, low, high = -difference, -high, -low
            return f"{winner} beats {loser}: {difference:+.2f} [{low:.2f}, {high:.2f}], {p}"
        head = f"{self.best} vs {self.other}: no significant difference at k = {self.k} ({p}); "
        if self.repeats_needed is not None:
            return head + f"about {self.repeats_needed} repeats per variant would likely tell them apart"
        if self.difference == 0:
            return head + "no difference observed"
        return head + "too few trials to estimate how many repeats would tell them apart"


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


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k: the probability that at least one of ``k`` trials, drawn without replacement from
    ``n`` trials of which ``c`` solved the task, solved it.

    The unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on
    Code"), ``1 - C(n-c, k) / C(n, k)``, in their numerically stable product form
    ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``.
    """
    _check_counts(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k: the probability that ``k`` trials drawn without replacement from ``n`` trials, of
    which ``c`` solved the task, *all* solved it: ``C(c, k) / C(n, k)``.

    A measure of reliability rather than of capability (tau-bench, Yao et al. 2024): it falls
    as ``k`` grows unless every trial succeeds.  Both binomials are exact integers, and
    ``int / int`` is correctly rounded, so the ratio needs no stable form.
    """
    _check_counts(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``.

    Under the null hypothesis each discordant pair falls either way with probability 1/2, so
    ``min(b, c)`` is Binomial(b + c, 1/2); the p-value is ``min(1, 2 * P(X <= min(b, c)))``
    (McNemar 1947, exact binomial form).  No discordant pairs means no evidence: p = 1.
    """
    for name, value in (("b", b), ("c", c)):
        if not _is_int(value) or value < 0:
            raise ValueError(f"mcnemar_exact: {name} must be an int >= 0, got {value!r}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_outcomes(a_trials: Sequence[Mapping[str, bool]], b_trials: Sequence[Mapping[str, bool]]) -> tuple[int, int]:
    """The discordant counts for McNemar's test over paired per-test outcomes.

    Trial ``i`` of A is paired with trial ``i`` of B; within a pair, each test both trials ran
    is one paired observation.  Returns ``(b, c)``: ``b`` pairs where A passed and B did not,
    ``c`` pairs where A did not pass and B did.
    """
    if len(a_trials) != len(b_trials):
        raise ValueError(
            f"paired_outcomes: trials pair one to one, got {len(a_trials)} trials for A and {len(b_trials)} for B"
        )
    a_only = b_only = 0
    for a_tests, b_tests in zip(a_trials, b_trials, strict=True):
        for node_id in a_tests.keys() & b_tests.keys():
            a_passed, b_passed = bool(a_tests[node_id]), bool(b_tests[node_id])
            if a_passed and not b_passed:
                a_only += 1
            elif b_passed and not a_passed:
                b_only += 1
    return a_only, b_only


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
    if not _is_int(resamples) or resamples < 1:
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
    """Compare the best variant with another: difference of mean scores, its CI, and a p-value.

    When the trials pair (both variants have per-test outcomes for every trial, the same number
    of trials, and the pairs share at least one test), the p-value is McNemar's exact test on the
    paired per-test outcomes; otherwise it is the permutation test on the scores.
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
    test: Literal["mcnemar", "permutation"]
    if _trials_pair(best, other):
        test = "mcnemar"
        p_value = mcnemar_exact(*paired_outcomes(best.tests, other.tests))
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
        test=test,
        k=min(len(best.scores), len(other.scores)),
        significant=p_value < alpha,
        repeats_needed=repeats_needed(best.scores, other.scores, alpha=alpha),
    )


def _trials_pair(best: VariantTrials, other: VariantTrials) -> bool:
    if not best.tests or len(best.tests) != len(other.tests):
        return False
    return any(a.keys() & b.keys() for a, b in zip(best.tests, other.tests, strict=True))


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
    if not _is_int(resamples) or resamples < 1:
        raise ValueError(f"resamples must be an int >= 1, got {resamples!r}")


def _check_counts(n: int, c: int, k: int) -> None:
    if not all(_is_int(value) for value in (n, c, k)):
        raise ValueError(f"n, c and k must be ints, got n={n!r}, c={c!r}, k={k!r}")
    if n < 1:
        raise ValueError(f"n (trials) must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (solved trials) must be between 0 and n={n}, got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n={n}, got {k}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
