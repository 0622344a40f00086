"""Exact statistics of solved counts (0/1 outcomes): pass@k, the Clopper-Pearson interval, Fisher's test.

Solved-or-not is the one outcome of a trial whose distribution is known
exactly, so these need no resampling: a solved rate's interval and a test of
two rates are computed from binomial and hypergeometric sums, the same every
time.  :func:`boundary` finds where a monotone condition flips, by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable


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


def clopper_pearson(solved: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson 1934) interval of a success probability from ``solved`` of ``n`` trials.

    The lower end is the ``p`` at which ``P(X >= solved) = (1 - confidence) / 2`` for ``X ~
    Binomial(n, p)`` (0 when ``solved`` is 0), the upper end the ``p`` at which ``P(X <= solved)`` is
    that tail (1 when ``solved == n``).  These are the quantiles of Beta(solved, n - solved + 1) and
    Beta(solved + 1, n - solved) through the beta/binomial relation; we find them by bisection on the
    binomial tail sums, which are monotone in ``p``.  Chosen over Wilson because its coverage is never
    below ``confidence``, which matters at the small ``n`` of agent trials.
    """
    _check_counts(n, solved, 1)
    if not 0 < confidence < 1:
        raise ValueError(f"clopper_pearson: confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    tail = (1 - confidence) / 2
    low = 0.0 if solved == 0 else _middle(boundary(lambda p: _binomial_tail(n, solved, p, upper=True) < tail))
    high = 1.0 if solved == n else _middle(boundary(lambda p: _binomial_tail(n, solved, p, upper=False) > tail))
    return low, high


def fisher_exact(a_solved: int, a_trials: int, b_solved: int, b_trials: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2x2 table of solved and unsolved trials.

    Given the margins, the number ``x`` of A's trials among all solved ones is hypergeometric;
    the p-value sums the probabilities of every ``x`` no more likely than the observed one
    (Fisher 1935; the convention of R's ``fisher.test``).  The probabilities share the
    denominator ``C(a_trials + b_trials, solved)``, so the comparison uses exact integers.
    """
    for name, solved, trials in (("a", a_solved, a_trials), ("b", b_solved, b_trials)):
        if not (is_int(solved) and is_int(trials)) or trials < 1 or not 0 <= solved <= trials:
            raise ValueError(
                f"fisher_exact: {name} needs 0 <= solved <= trials and trials >= 1, got {solved!r} of {trials!r}"
            )
    solved = a_solved + b_solved

    def weight(x: int) -> int:
        return math.comb(a_trials, x) * math.comb(b_trials, solved - x)

    observed = weight(a_solved)
    outcomes = range(max(0, solved - b_trials), min(a_trials, solved) + 1)
    extreme = sum(w for w in map(weight, outcomes) if w <= observed)
    return extreme / math.comb(a_trials + b_trials, solved)


def _binomial_tail(n: int, k: int, p: float, *, upper: bool) -> float:
    """``P(X >= k)`` (``upper``) or ``P(X <= k)`` for ``X ~ Binomial(n, p)``, ``0 < p < 1``, summed in log space."""
    outcomes = range(k, n + 1) if upper else range(k + 1)
    log_p, log_q = math.log(p), math.log1p(-p)
    return math.fsum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        for i in outcomes
    )


def _middle(bracket: tuple[float, float]) -> float:
    return (bracket[0] + bracket[1]) / 2


def boundary(holds: Callable[[float], bool], *, tolerance: float = 1e-12) -> tuple[float, float]:
    """A bracket ``(low, high)`` narrower than ``tolerance`` of the point in [0, 1] where ``holds`` turns false.

    ``holds`` must be true on an initial segment of [0, 1] and false after it;
    ``low`` is on the side where it holds (0 when it holds nowhere).
    """
    low, high = 0.0, 1.0
    while high - low > tolerance:
        middle = (low + high) / 2
        if holds(middle):
            low = middle
        else:
            high = middle
    return low, high


def _check_counts(n: int, c: int, k: int) -> None:
    if not all(is_int(value) for value in (n, c, k)):
        raise ValueError(f"n, c and k must be ints, got n={n!r}, c={c!r}, k={k!r}")
    if n < 1:
        raise ValueError(f"n (trials) must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (solved trials) must be between 0 and n={n}, got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n={n}, got {k}")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
