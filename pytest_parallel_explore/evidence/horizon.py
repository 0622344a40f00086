"""Thresholds calibrated to the horizon a race declares (``max``), not to an unbounded one.

A comparison of two variants "crosses" when its statistic reaches the threshold in some round up to
the horizon ``N``.  The race needs each crossing to have probability at most ``level`` (``alpha / K``)
when the first variant is no better.  Ville's threshold ``1 / level`` on an e-process gives that for
every horizon, so for a short one it is far too strict: at ``N = 12`` a race with ``K = 3`` used to
declare a winner among equal variants 0.5-2% of the time, not the 5% it may.

0/1 scores: exact
-----------------
The statistic is the one-sided Fisher exact test of the two variants' first ``t`` trials, as
``-log p - log(t) / 2`` (the boundary on ``p`` tightens as ``1 / sqrt(t)``: it spends more of the level
in the first rounds, where clear winners are decided; against ``-log p`` and ``-log p - log t`` it used
the fewest trials over the benchmark's scenarios), made monotone (its running maximum over tables with
fewer successes for the first variant and more for the second).  It depends on the counts
``(t, a, b)`` only, so the probability of ever crossing within ``N`` rounds when both variants solve
with rate ``p`` is a polynomial in ``p`` whose coefficients count the lattice paths that first cross
at ``(t, a + b)``: one dynamic programme per candidate threshold, exact up to float rounding.  The
threshold is the smallest one whose largest crossing probability over ``p`` (a grid of 99 rates
refined by golden-section search around the worst) is at most ``level`` (the race asks for
``EXACT_SHARE`` of its level).  Monotonicity makes common rates the worst case: couple a null with
``p <= q`` to one with both at ``q``; every path of the first crosses only where the second does.

Scores in [0, 1]: calibrated, with a margin
-------------------------------------------
The two-sample product bet (:mod:`bets`) is an e-process for every distribution of scores, but its
wealth depends on the order of the scores, so no small exact programme exists.  Its threshold is the
``1 - SAFETY * level`` quantile of its largest log-wealth within ``N`` rounds, simulated (seeded, so
every process gets the same number) with both variants Bernoulli(1/2): the scores of largest variance,
the hardest null among those the benchmark measures (Bernoulli 0.05-0.95, uniform, Beta(0.2, 0.2),
pass rates of 10 tests).  ``SAFETY = 0.8`` leaves a fifth of the level for the simulation's error and
for nulls not measured.  It is never above Ville's threshold, which holds whatever the scores.

Beyond ``MAX_CALIBRATED`` rounds, and whenever the race outgrows the horizon it declared, the
race uses Ville's threshold on the product bet, valid at any horizon.
"""

from __future__ import annotations

import functools
import math
import random

from .bets import ProductBet

#: Longest horizon calibrated (the programme costs ``N^3`` a threshold); beyond it, Ville's threshold.
MAX_CALIBRATED = 50
#: Share of the level a simulated threshold may spend (see the module docstring).
SAFETY = 0.8
#: Share of the level the race gives an exact threshold: 10% is left so that 20,000 simulated races can
#: confirm the level with a 99% bound (at the full level, two variants declare a winner 4.999% of the time).
EXACT_SHARE = 0.9
#: Simulated races behind a threshold for scores in [0, 1].
SIMULATIONS = 20_000

Table = list[list[list[float]]]


def ville(level: float) -> float:
    """Ville's threshold, as a log: valid for an e-process at every horizon."""
    return math.log(1 / level)


@functools.lru_cache(maxsize=64)
def fisher_statistic(horizon: int) -> Table:
    """``table[t][a][b]``: the monotone ``-log p - log(t) / 2`` of the one-sided Fisher test after ``t`` trials each.

    ``p = P(A >= a | A + B = a + b)`` for ``A`` hypergeometric (``t`` of ``2 t`` trials, ``a + b`` solved):
    the chance, were the variants equal, that the first solved at least ``a`` of them.
    """
    table: Table = [[[0.0]]]
    for t in range(1, horizon + 1):
        raw = [[0.0] * (t + 1) for _ in range(t + 1)]
        for solved in range(2 * t + 1):
            low, high = max(0, solved - t), min(t, solved)
            tail, total = 0, math.comb(2 * t, solved)
            for a in range(high, low - 1, -1):
                tail += math.comb(t, a) * math.comb(t, solved - a)
                raw[a][solved - a] = -math.log(tail / total) - math.log(t) / 2
        table.append(_monotone(raw))
    return table


def _monotone(raw: list[list[float]]) -> list[list[float]]:
    """The running maximum over ``a' <= a``, ``b' >= b``: more for the first variant never weakens the case."""
    size = len(raw)
    out = [row[:] for row in raw]
    for a in range(size):
        for b in range(size - 1, -1, -1):
            if a > 0:
                out[a][b] = max(out[a][b], out[a - 1][b])
            if b < size - 1:
                out[a][b] = max(out[a][b], out[a][b + 1])
    return out


def crossing_probability(table: Table, threshold: float, rate: float) -> float:
    """``P(exists t <= N: table[t][a_t][b_t] >= threshold)`` for two variants that both solve with ``rate``."""
    return _evaluate(_first_crossings(table, threshold), rate)


@functools.lru_cache(maxsize=256)
def solved_threshold(horizon: int, level: float) -> float:
    """The smallest Fisher threshold whose crossing probability within ``horizon`` rounds is at most ``level``."""
    table = fisher_statistic(horizon)
    low, high = 0.0, max(max(row) for row in table[-1]) + 1.0  # high: nothing crosses
    while high - low > 1e-4:
        middle = (low + high) / 2
        if _worst(_first_crossings(table, middle)) <= level:
            high = middle
        else:
            low = middle
    return high


@functools.lru_cache(maxsize=64)
def score_threshold(horizon: int, level: float) -> float:
    """The product bet's log threshold for ``horizon`` rounds at ``level``: simulated, with the margin ``SAFETY``."""
    rng = random.Random(f"{horizon}:{level!r}")
    highest = []
    for _ in range(SIMULATIONS):
        bet, top = ProductBet(), 0.0
        for _ in range(horizon):
            top = max(top, bet.step(float(rng.random() < 0.5), float(rng.random() < 0.5)))
        highest.append(top)
    highest.sort()
    allowed = int(SAFETY * level * SIMULATIONS)  # simulated races that may cross
    quantile = highest[-allowed - 1] if allowed < SIMULATIONS else 0.0
    return min(math.nextafter(quantile, math.inf), ville(level))


def _first_crossings(table: Table, threshold: float) -> list[list[float]]:
    """``counts[t][k]``: lattice paths that first reach ``table >= threshold`` at round ``t`` with ``k`` solved."""
    horizon = len(table) - 1
    alive = {(0, 0): 1.0}
    counts = [[0.0] * (2 * t + 1) for t in range(horizon + 1)]
    for t in range(1, horizon + 1):
        step: dict[tuple[int, int], float] = {}
        for (a, b), paths in alive.items():
            for cell in ((a, b), (a + 1, b), (a, b + 1), (a + 1, b + 1)):
                step[cell] = step.get(cell, 0.0) + paths
        alive = {}
        row, crossed = table[t], counts[t]
        for (a, b), paths in step.items():
            if row[a][b] >= threshold:
                crossed[a + b] += paths
            else:
                alive[a, b] = paths
    return counts


def _evaluate(counts: list[list[float]], rate: float) -> float:
    total = 0.0
    for t, row in enumerate(counts):
        for k, paths in enumerate(row):
            if paths:
                total += paths * rate**k * (1 - rate) ** (2 * t - k)
    return total


def _worst(counts: list[list[float]]) -> float:
    """The largest crossing probability over common rates: a grid, then golden-section search around its peak."""
    grid = [i / 100 for i in range(1, 100)]
    values = [_evaluate(counts, p) for p in grid]
    peak = max(range(len(grid)), key=values.__getitem__)
    low, high = grid[max(peak - 1, 0)], grid[min(peak + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(30):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if _evaluate(counts, left) < _evaluate(counts, right):
            low = left
        else:
            high = right
    return max(max(values), _evaluate(counts, (low + high) / 2))
