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

from pytest_parallel_explore.evidence.counts import clopper_pearson, fisher_exact, pass_at_k, pass_hat_k
from pytest_parallel_explore.evidence.stats import (
    Comparison,
    DifferingTest,
    VariantTrials,
    bootstrap_difference,
    compare,
    compare_to_best,
    holm,
    per_test_differences,
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


def _binomial_tails(n: int, x: int, p: float) -> tuple[float, float]:
    """P(X >= x) and P(X <= x) for X ~ Binomial(n, p), summed term by term from the definition."""
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return sum(pmf[x:]), sum(pmf[: x + 1])


@pytest.mark.parametrize(("x", "n"), [(0, 1), (1, 1), (0, 5), (2, 5), (5, 5), (3, 10), (7, 12), (1, 30)])
def test_clopper_pearson_ends_are_where_the_binomial_tails_reach_alpha_over_two(x: int, n: int) -> None:
    low, high = clopper_pearson(x, n)
    assert 0 <= low < x / n < high <= 1 or (x == 0 and low == 0) or (x == n and high == 1)
    if x > 0:
        assert _binomial_tails(n, x, low)[0] == pytest.approx(0.025, abs=1e-9)
        assert _binomial_tails(n, x, low - 1e-6)[0] < 0.025 < _binomial_tails(n, x, low + 1e-6)[0]
    if x < n:
        assert _binomial_tails(n, x, high)[1] == pytest.approx(0.025, abs=1e-9)


def test_clopper_pearson_by_hand() -> None:
    # No successes in n: the upper end solves (1 - p)^n = 0.025; all successes: the lower end solves p^n = 0.025.
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025**0.1, abs=1e-10))
    assert clopper_pearson(10, 10) == (pytest.approx(0.025**0.1, abs=1e-10), 1.0)
    # 3 of 10 (the textbook value, e.g. R's binom.test): [0.0667, 0.6525].
    assert clopper_pearson(3, 10) == (pytest.approx(0.06674, abs=1e-5), pytest.approx(0.65245, abs=1e-5))
    assert clopper_pearson(3, 10, confidence=0.5)[0] > clopper_pearson(3, 10)[0]
    with pytest.raises(ValueError):
        clopper_pearson(4, 3)
    with pytest.raises(ValueError, match="confidence"):
        clopper_pearson(1, 3, confidence=1.5)


@pytest.mark.parametrize("p", [0.03, 0.2, 0.5, 0.61, 0.9])
def test_clopper_pearson_covers_at_least_95_percent_at_every_p(p: float) -> None:
    # Exact coverage at n = 12: the binomial probability of every outcome whose interval contains p.
    n = 12
    coverage = sum(
        math.comb(n, x) * p**x * (1 - p) ** (n - x)
        for x in range(n + 1)
        if clopper_pearson(x, n)[0] <= p and p <= clopper_pearson(x, n)[1]
    )
    assert coverage >= 0.95


def _enumerated_fisher_p(a_solved: int, a_trials: int, b_solved: int, b_trials: int) -> Fraction:
    """Given which trials are A's and how many were solved, every choice of the solved trials is equally likely
    under the null: the p-value is the share of choices whose table is no more likely than the observed one."""
    trials, solved = a_trials + b_trials, a_solved + b_solved
    choices = list(itertools.combinations(range(trials), solved))
    in_a = [sum(i < a_trials for i in choice) for choice in choices]
    probability = {x: Fraction(in_a.count(x), len(choices)) for x in set(in_a)}
    return sum((q for q in probability.values() if q <= probability[a_solved]), Fraction(0))


@pytest.mark.parametrize(
    "table", [(3, 4, 1, 4), (5, 5, 0, 5), (0, 3, 0, 3), (2, 6, 4, 6), (6, 6, 3, 6), (1, 3, 5, 7), (4, 4, 4, 4)]
)
def test_fisher_exact_matches_the_enumeration_of_all_tables(table: tuple[int, int, int, int]) -> None:
    assert fisher_exact(*table) == pytest.approx(float(_enumerated_fisher_p(*table)), abs=1e-12)


def test_fisher_exact_by_hand() -> None:
    # 3/4 vs 1/4: tables x = 0..4 have weights C(4,x) C(4,4-x) = 1, 16, 36, 16, 1 of 70; x = 3 has 16,
    # so p = (1 + 16 + 16 + 1) / 70.
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70)
    # 5/5 vs 0/5: only the two most extreme tables, 1 + 1 of C(10, 5) = 252.
    assert fisher_exact(5, 5, 0, 5) == pytest.approx(2 / 252)
    assert fisher_exact(0, 3, 0, 3) == 1.0
    with pytest.raises(ValueError, match="fisher_exact: b needs 0 <= solved <= trials"):
        fisher_exact(1, 3, 4, 3)


def test_holm_by_hand() -> None:
    # Sorted: 0.005, 0.01, 0.03, 0.04 with multipliers 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    assert holm([0.04]) == [0.04]
    assert holm([]) == []
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([1.5])


def test_per_test_differences_describe_pass_shares_over_shared_tests() -> None:
    best_trials = [
        {"t::x": True, "t::y": True, "t::z": False, "t::only_a": True},
        {"t::x": False, "t::y": True},
    ]
    other_trials = [
        {"t::x": False, "t::y": True, "t::z": True, "t::only_b": False},
        {"t::x": False, "t::y": False},
        {"t::x": False, "t::y": True},
    ]
    # x: 1/2 vs 0/3; y: 2/2 vs 2/3; z: 0/1 vs 1/1 (largest gap first); only_a/only_b are not shared.
    assert per_test_differences(best_trials, other_trials) == (
        DifferingTest("t::z", 0, 1, 1, 1),
        DifferingTest("t::x", 1, 2, 0, 3),
        DifferingTest("t::y", 2, 2, 2, 3),
    )
    assert per_test_differences(best_trials, best_trials) == ()


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


def test_compare_uses_fisher_on_solved_trials_when_scores_are_0_or_1() -> None:
    tests = [f"t.py::test_{i}" for i in range(8)]
    # The per-test outcomes (b = 7 discordant pairs) used to feed McNemar's test; now they are only described.
    best = VariantTrials(scores=[1.0, 1.0, 1.0, 1.0, 1.0], tests=[dict.fromkeys(tests, True)] * 5)
    other = VariantTrials(scores=[0.0, 0.0, 0.0, 0.0, 0.0], tests=[{t: i >= 4 for i, t in enumerate(tests)}] * 5)
    result = compare("token_bucket", best, "fixed_window", other)
    assert result.test == "fisher"
    # 5/5 vs 0/5: 2 of C(10, 5) = 252 equally likely choices of the solved trials are as extreme.
    assert result.p_value == result.p_adjusted == pytest.approx(2 / 252)
    assert result.difference == 1.0
    assert (result.k, result.comparisons) == (5, 1)
    assert result.significant
    assert [d.test for d in result.tests_differ] == tests[:4]
    assert result.sentence() == (
        "token_bucket beats fixed_window: +1.00 [1.00, 1.00], p = 0.0079 (Fisher's exact test on solved trials)"
    )


def test_compare_falls_back_to_the_permutation_test_on_scores() -> None:
    best = VariantTrials(scores=[0.9, 0.8, 1.0])
    other = VariantTrials(scores=[0.6, 0.7, 0.65])
    result = compare("a", best, "b", other, seed=1)
    assert result.test == "permutation"
    assert result.method == "permutation test on trial scores"
    # All three of a's scores beat all of b's: 2 of the C(6, 3) = 20 splits are as extreme.
    assert result.p_value == pytest.approx(0.1)
    assert not result.significant
    assert result.k == 3
    assert result.repeats_needed is not None
    assert result.sentence() == (
        "a vs b: no significant difference at k = 3, p = 0.1 (permutation test on trial scores); "
        f"about {result.repeats_needed} repeats per variant would likely tell them apart"
    )
    # Scores that are all 0 or 1 but one make it a permutation test too.
    assert compare("a", VariantTrials(scores=[1.0, 0.5]), "b", VariantTrials(scores=[0.0, 1.0])).test == "permutation"
    with pytest.raises(ValueError, match="'a' has 3 scores but per-test outcomes for 1 trials"):
        compare("a", VariantTrials(scores=[1.0, 1.0, 1.0], tests=[{"t": True}]), "b", other)


def test_compare_to_best_adjusts_with_holm() -> None:
    variants = {
        "best": VariantTrials(scores=[1.0] * 5),
        "never": VariantTrials(scores=[0.0] * 5),
        "sometimes": VariantTrials(scores=[1.0, 0.0, 1.0, 0.0, 1.0]),
    }
    never, sometimes = compare_to_best("best", variants)
    # Raw Fisher p-values: 5/5 vs 0/5 is 2/252; 5/5 vs 3/5: tables x = 3..5 (of 8 solved) weigh 10, 20, 10
    # of C(10, 8) = 45, and x = 3 and x = 5 are no more likely than the observed x = 5: 20/45.
    assert never.p_value == pytest.approx(2 / 252)
    assert sometimes.p_value == pytest.approx(20 / 45)
    # Holm over two: 2 * 2/252, then max(that, 1 * 20/45).
    assert never.p_adjusted == pytest.approx(4 / 252)
    assert sometimes.p_adjusted == pytest.approx(20 / 45)
    assert (never.comparisons, never.significant, sometimes.significant) == (2, True, False)
    assert never.sentence() == (
        "best beats never: +1.00 [1.00, 1.00], p = 0.016 "
        "(Fisher's exact test on solved trials; Holm-adjusted over 2 comparisons)"
    )
    # Holm can turn raw p-values below alpha into adjusted ones above it. 5/5 vs 1/5: tables x = 1..5
    # (of 6 solved) weigh 5, 50, 100, 50, 5 of C(10, 6) = 210, so p = 10/210 = 0.048 each; Holm: 2 * 0.048.
    one_of_five = VariantTrials(scores=[0.0, 0.0, 1.0, 0.0, 0.0])
    three = {"a": VariantTrials(scores=[1.0] * 5), "b": one_of_five, "c": one_of_five}
    for comparison in compare_to_best("a", three):
        assert comparison.p_value == pytest.approx(10 / 210)
        assert comparison.p_adjusted == pytest.approx(20 / 210)
        assert not comparison.significant
    with pytest.raises(ValueError, match="'z' is not among"):
        compare_to_best("z", variants)


def _comparison(**changes: object) -> Comparison:
    fields: dict[str, object] = {
        "best": "token_bucket",
        "other": "fixed_window",
        "difference": 0.21,
        "ci_low": 0.08,
        "ci_high": 0.33,
        "p_value": 0.005,
        "p_adjusted": 0.01,
        "comparisons": 2,
        "test": "permutation",
        "method": "permutation test on trial scores",
        "k": 3,
        "significant": True,
        "repeats_needed": 12,
    }
    fields.update(changes)
    return Comparison(**fields)  # type: ignore[arg-type]


_HOLM = "(permutation test on trial scores; Holm-adjusted over 2 comparisons)"


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({}, f"token_bucket beats fixed_window: +0.21 [0.08, 0.33], p = 0.01 {_HOLM}"),
        ({"p_adjusted": 0.012345}, f"token_bucket beats fixed_window: +0.21 [0.08, 0.33], p = 0.012 {_HOLM}"),
        ({"p_adjusted": 0.0004}, f"token_bucket beats fixed_window: +0.21 [0.08, 0.33], p < 0.001 {_HOLM}"),
        (
            {"comparisons": 1, "test": "fisher", "method": "Fisher's exact test on solved trials"},
            "token_bucket beats fixed_window: +0.21 [0.08, 0.33], p = 0.01 (Fisher's exact test on solved trials)",
        ),
        (
            {"difference": -0.21, "ci_low": -0.33, "ci_high": -0.08},
            f"fixed_window beats token_bucket: +0.21 [0.08, 0.33], p = 0.01 {_HOLM}",
        ),
        (
            {"significant": False, "p_adjusted": 0.41},
            f"token_bucket vs fixed_window: no significant difference at k = 3, p = 0.41 {_HOLM}; "
            "about 12 repeats per variant would likely tell them apart",
        ),
        (
            {"significant": False, "p_adjusted": 1.0, "difference": 0.0, "repeats_needed": None},
            f"token_bucket vs fixed_window: no significant difference at k = 3, p = 1 {_HOLM}; no difference observed",
        ),
        (
            {"significant": False, "p_adjusted": 1.0, "k": 1, "repeats_needed": None},
            f"token_bucket vs fixed_window: no significant difference at k = 1, p = 1 {_HOLM}; "
            "too few trials to estimate how many repeats would tell them apart",
        ),
    ],
)
def test_comparison_sentence(changes: dict[str, object], sentence: str) -> None:
    assert _comparison(**changes).sentence() == sentence
