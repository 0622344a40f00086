"""Statistics over repeated trials, checked against values worked out independently here.

Each expected value is computed in the test from its definition (enumerating subsets, splits or
binomial outcomes), or by hand in a comment, never by calling the code under test.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from pytest_parallel_explore.stats import (
    Comparison,
    VariantTrials,
    bootstrap_difference,
    compare,
    mcnemar_exact,
    paired_outcomes,
    pass_at_k,
    pass_hat_k,
    permutation_test,
    repeats_needed,
    summarize,
)

# Five trials, two of which solved the task.
OUTCOMES = (True, False, True, False, False)


def _share_of_subsets(k: int, keep: str) -> Fraction:
    """Of all k-subsets of OUTCOMES' trials, the share with any (``keep="any"``) or all successes."""
    subsets = list(itertools.combinations(OUTCOMES, k))
    test = any if keep == "any" else all
    return Fraction(sum(test(subset) for subset in subsets), len(subsets))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_pass_at_k_is_the_share_of_k_subsets_with_a_success(k: int) -> None:
    expected = _share_of_subsets(k, "any")
    assert pass_at_k(5, 2, k) == pytest.approx(float(expected), abs=1e-12)


def test_pass_at_k_small_values_by_hand() -> None:
    # n=5, c=2: pass@1 = 2/5; pass@2 = 1 - C(3,2)/C(5,2) = 1 - 3/10; k >= 4 always includes a success.
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 2, 4) == 1.0
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_pass_hat_k_is_the_share_of_k_subsets_all_successes(k: int) -> None:
    expected = _share_of_subsets(k, "all")
    assert pass_hat_k(5, 2, k) == pytest.approx(float(expected), abs=1e-12)


def test_pass_hat_k_small_values_by_hand() -> None:
    # n=5, c=2: pass^1 = 2/5; pass^2 = C(2,2)/C(5,2) = 1/10; pass^3 = 0 (only two successes).
    assert pass_hat_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_hat_k(5, 2, 2) == pytest.approx(0.1)
    assert pass_hat_k(5, 2, 3) == 0.0
    assert pass_hat_k(4, 4, 4) == 1.0


@pytest.mark.parametrize("estimator", [pass_at_k, pass_hat_k])
@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6), (5.0, 2, 1), (5, 2, True)],
)
def test_pass_estimators_reject_impossible_counts(
    estimator: Callable[[int, int, int], float], n: Any, c: Any, k: Any
) -> None:
    with pytest.raises(ValueError):
        estimator(n, c, k)


def _two_sided_binomial(b: int, c: int) -> float:
    """Sum of Binomial(b + c, 1/2) probabilities of outcomes at least as far from the centre as b."""
    n = b + c
    distance = abs(b - n / 2)
    return sum(math.comb(n, i) * 0.5**n for i in range(n + 1) if abs(i - n / 2) >= distance)


@pytest.mark.parametrize(("b", "c"), [(1, 7), (7, 1), (0, 5), (2, 3), (3, 3), (0, 1), (4, 12), (10, 0)])
def test_mcnemar_exact_matches_a_direct_binomial_sum(b: int, c: int) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(min(1.0, _two_sided_binomial(b, c)), abs=1e-12)


def test_mcnemar_exact_by_hand() -> None:
    # b=1, c=7: 2 * (C(8,0) + C(8,1)) / 2^8 = 18/256.
    assert mcnemar_exact(1, 7) == 0.0703125
    # b=0, c=5: 2 * 1/32.
    assert mcnemar_exact(0, 5) == 0.0625
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0
    with pytest.raises(ValueError, match="b must be an int >= 0"):
        mcnemar_exact(-1, 3)


def test_paired_outcomes_counts_discordant_pairs_over_shared_tests() -> None:
    a_trials = [
        {"t::x": True, "t::y": True, "t::z": False, "t::only_a": True},
        {"t::x": False, "t::y": True},
    ]
    b_trials = [
        {"t::x": False, "t::y": True, "t::z": True, "t::only_b": False},
        {"t::x": False, "t::y": False},
    ]
    # Trial 0: x A-only, y both, z B-only (only_a/only_b not shared). Trial 1: x neither, y A-only.
    assert paired_outcomes(a_trials, b_trials) == (2, 1)
    assert paired_outcomes(b_trials, a_trials) == (1, 2)
    with pytest.raises(ValueError, match="pair one to one"):
        paired_outcomes(a_trials, b_trials[:1])


def _enumerated_permutation_p(a: list[float], b: list[float]) -> Fraction:
    """Exact two-sided p: the share of relabellings of the pooled values whose |mean difference| is as large."""
    pooled = [Fraction(value) for value in a + b]
    observed = abs(Fraction(sum(pooled[: len(a)])) / len(a) - Fraction(sum(pooled[len(a) :])) / len(b))
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    extreme = 0
    for group in splits:
        in_a = [pooled[i] for i in group]
        in_b = [pooled[i] for i in range(len(pooled)) if i not in group]
        extreme += abs(Fraction(sum(in_a)) / len(in_a) - Fraction(sum(in_b)) / len(in_b)) >= observed
    return Fraction(extreme, len(splits))


def test_permutation_test_exact_on_a_tiny_case() -> None:
    # Of the C(6,3) = 20 splits of 1..6, only {1,2,3} | {4,5,6} and its mirror reach |difference| = 3.
    assert permutation_test([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert _enumerated_permutation_p([1, 2, 3], [4, 5, 6]) == Fraction(1, 10)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.9, 0.8, 1.0], [0.6, 0.7, 0.65]),
        ([1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0]),
        ([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]),
        ([0.9, 0.2, 0.3], [0.9, 0.2, 0.6]),  # float sums in another order: ties must still count
        ([0.5], [0.2, 0.4, 0.9, 0.1]),
    ],
)
def test_permutation_test_matches_enumeration_with_exact_arithmetic(a: list[float], b: list[float]) -> None:
    assert permutation_test(a, b) == pytest.approx(float(_enumerated_permutation_p(a, b)), abs=1e-12)


def test_permutation_test_monte_carlo_is_seeded_and_never_zero() -> None:
    # C(30, 15) splits is far too many to enumerate; no random split of these reaches a difference of 1
    # except (with probability 2 / 155 million) the observed one, so the corrected p is 1 / (resamples + 1).
    a, b = [1.0] * 15, [0.0] * 15
    assert permutation_test(a, b, resamples=500) == 1 / 501
    noisy_a = [0.5, 0.6, 0.4, 0.7, 0.5, 0.6, 0.3, 0.5, 0.6, 0.5, 0.4, 0.6, 0.5, 0.7, 0.5]
    noisy_b = [0.4, 0.5, 0.6, 0.5, 0.4, 0.5, 0.5, 0.3, 0.6, 0.4, 0.5, 0.5, 0.4, 0.6, 0.5]
    first = permutation_test(noisy_a, noisy_b, seed=3, resamples=500)
    assert first == permutation_test(noisy_a, noisy_b, seed=3, resamples=500)
    assert 1 / 501 < first <= 1


def test_summarize_mean_sd_and_range_agree_with_statistics() -> None:
    scores = [0.2, 0.9, 0.4, 0.4, 0.7]
    summary = summarize(scores)
    assert summary.n == 5
    assert summary.mean == pytest.approx(statistics.mean(scores))
    assert summary.sd == pytest.approx(statistics.stdev(scores))
    assert (summary.min, summary.max) == (0.2, 0.9)
    assert summary.ci_low <= summary.mean <= summary.ci_high
    assert 0.2 <= summary.ci_low < summary.ci_high <= 0.9


def test_summarize_bootstrap_interval_is_reproducible_with_a_seed() -> None:
    scores = [0.2, 0.9, 0.4, 0.4, 0.7, 1.0, 0.0]
    first = summarize(scores, seed=7)
    assert summarize(scores, seed=7) == first
    others = {(s.ci_low, s.ci_high) for s in (summarize(scores, seed=seed) for seed in range(8, 13))}
    assert others - {(first.ci_low, first.ci_high)}, "different seeds should resample differently"
    narrower = summarize(scores, seed=7, confidence=0.5)
    assert first.ci_low < narrower.ci_low <= narrower.ci_high < first.ci_high


def test_summarize_bootstrap_interval_has_the_expected_width() -> None:
    # 100 trials, half solved: the mean's standard error is 0.5 / sqrt(100) = 0.05, so a 95% interval
    # is about 0.5 +/- 1.96 * 0.05 = [0.40, 0.60].
    summary = summarize([0.0] * 50 + [1.0] * 50, seed=1)
    assert summary.ci_low == pytest.approx(0.402, abs=0.03)
    assert summary.ci_high == pytest.approx(0.598, abs=0.03)


def test_summarize_interval_ends_are_the_bootstrap_quantiles() -> None:
    # Resampled means of [0, 0, 1] are j/3 with j ~ Binomial(3, 1/3): P(mean <= 2/3) = 26/27 = 0.963.
    # So the 97.5% quantile (95% interval) is 1, the 95% quantile (90% interval) is 2/3; the low ends are 0.
    assert (summarize([0.0, 0.0, 1.0]).ci_low, summarize([0.0, 0.0, 1.0]).ci_high) == (0.0, 1.0)
    ninety = summarize([0.0, 0.0, 1.0], confidence=0.9)
    assert (ninety.ci_low, ninety.ci_high) == (0.0, pytest.approx(2 / 3))


@pytest.mark.parametrize("scores", [[0.1, 0.1, 0.1], [0.75]])
def test_summarize_constant_or_single_scores_interval_is_the_point(scores: list[float]) -> None:
    summary = summarize(scores)
    assert summary.ci_low == summary.mean == summary.ci_high
    assert summary.mean == pytest.approx(scores[0])
    assert summary.sd == 0.0


def test_summarize_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one score"):
        summarize([])
    with pytest.raises(ValueError, match="confidence"):
        summarize([0.1, 0.2], confidence=95)


def test_bootstrap_difference_is_seeded_and_brackets_the_difference() -> None:
    a, b = [0.9, 0.8, 1.0, 0.7], [0.6, 0.7, 0.65, 0.5]
    difference, low, high = bootstrap_difference(a, b, seed=5)
    assert difference == pytest.approx(0.85 - 0.6125)
    assert low <= difference <= high
    # Every resampled mean lies within each group's range, so the interval does too.
    assert min(a) - max(b) <= low and high <= max(a) - min(b)
    assert bootstrap_difference(a, b, seed=5) == (difference, low, high)
    assert bootstrap_difference([1.0, 1.0], [0.25]) == (0.75, 0.75, 0.75)


def test_repeats_needed_by_hand() -> None:
    # a = [1, 2, 3], b = [0, 1, 2]: delta = 1, both sample variances 1, so pooled sigma^2 = 1;
    # n = 2 * (1.959964 + 0.841621)^2 * 1 / 1 = 15.70 -> 16.
    assert repeats_needed([1, 2, 3], [0, 1, 2]) == 16
    # Twice the difference needs a quarter of the trials: 15.70 / 4 = 3.92 -> 4.
    assert repeats_needed([2, 3, 4], [0, 1, 2]) == 4
    # A huge, noiseless difference still needs at least 2 trials per variant.
    assert repeats_needed([1.0, 1.0], [0.0, 0.0]) == 2
    assert repeats_needed([0.5, 0.7], [0.7, 0.5]) is None
    assert repeats_needed([0.9], [0.1]) is None


def test_compare_pairs_per_test_outcomes_with_mcnemar() -> None:
    tests = [f"t.py::test_{i}" for i in range(8)]
    # Per trial, best passes all 8 tests; other fails tests 0..3 in trial 0, 0..2 in trial 1 (b = 7, c = 0).
    best = VariantTrials(scores=[1.0, 1.0], tests=[dict.fromkeys(tests, True)] * 2)
    other = VariantTrials(
        scores=[0.5, 0.625],
        tests=[{t: i >= 4 for i, t in enumerate(tests)}, {t: i >= 3 for i, t in enumerate(tests)}],
    )
    result = compare("token_bucket", best, "fixed_window", other)
    assert result.test == "mcnemar"
    assert result.p_value == pytest.approx(2 / 2**7)
    assert result.difference == pytest.approx(1.0 - 0.5625)
    assert result.k == 2
    assert result.significant
    assert result.sentence().startswith("token_bucket beats fixed_window: +0.44 [")
    assert result.sentence().endswith("], p = 0.016")


def test_compare_falls_back_to_the_permutation_test_on_scores() -> None:
    best = VariantTrials(scores=[0.9, 0.8, 1.0])
    other = VariantTrials(scores=[0.6, 0.7, 0.65])
    result = compare("a", best, "b", other, seed=1)
    assert result.test == "permutation"
    # All three of a's scores beat all of b's: 2 of the C(6, 3) = 20 splits are as extreme.
    assert result.p_value == pytest.approx(0.1)
    assert not result.significant
    assert result.k == 3
    assert result.repeats_needed is not None
    assert result.sentence() == (
        f"a vs b: no significant difference at k = 3 (p = 0.1); about {result.repeats_needed} "
        "repeats per variant would likely tell them apart"
    )
    # Per-test outcomes for only some trials, or different trial counts, do not pair.
    partial = VariantTrials(scores=[0.9, 0.8], tests=[{"t": True}, {"t": True}])
    assert compare("a", partial, "b", other).test == "permutation"
    with pytest.raises(ValueError, match="'a' has 3 scores but per-test outcomes for 1 trials"):
        compare("a", VariantTrials(scores=[1.0, 1.0, 1.0], tests=[{"t": True}]), "b", other)


def _comparison(**changes: object) -> Comparison:
    fields: dict[str, object] = {
        "best": "token_bucket",
        "other": "fixed_window",
        "difference": 0.21,
        "ci_low": 0.08,
        "ci_high": 0.33,
        "p_value": 0.01,
        "test": "mcnemar",
        "k": 3,
        "significant": True,
        "repeats_needed": 12,
    }
    fields.update(changes)
    return Comparison(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({}, "token_bucket beats fixed_window: +0.21 [0.08, 0.33], p = 0.01"),
        ({"p_value": 0.012345}, "token_bucket beats fixed_window: +0.21 [0.08, 0.33], p = 0.012"),
        ({"p_value": 0.0004}, "token_bucket beats fixed_window: +0.21 [0.08, 0.33], p < 0.001"),
        (
            {"difference": -0.21, "ci_low": -0.33, "ci_high": -0.08},
            "fixed_window beats token_bucket: +0.21 [0.08, 0.33], p = 0.01",
        ),
        (
            {"significant": False, "p_value": 0.41},
            "token_bucket vs fixed_window: no significant difference at k = 3 (p = 0.41); "
            "about 12 repeats per variant would likely tell them apart",
        ),
        (
            {"significant": False, "p_value": 1.0, "difference": 0.0, "repeats_needed": None},
            "token_bucket vs fixed_window: no significant difference at k = 3 (p = 1); no difference observed",
        ),
        (
            {"significant": False, "p_value": 1.0, "k": 1, "repeats_needed": None},
            "token_bucket vs fixed_window: no significant difference at k = 1 (p = 1); "
            "too few trials to estimate how many repeats would tell them apart",
        ),
    ],
)
def test_comparison_sentence(changes: dict[str, object], sentence: str) -> None:
    assert _comparison(**changes).sentence() == sentence
