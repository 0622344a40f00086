"""Sequential racing: stop repeating trials once the data say which variants are worse.

Variants run in rounds; in round ``t`` every variant still in the race runs its ``t``-th trial, whose
score lies in [0, 1].  After each round, :func:`race_state` eliminates every variant that another one
beats with confidence, and says when the race is decided.  It is a pure function of the scores
observed so far, in trial order, so a resumed run or an xdist worker recomputes the same state from
the saved records.

The procedure
-------------
Every ordered pair ``(i, j)`` of variants still in the race runs a test of "``i`` is better than
``j``" (:mod:`duels`: by score, by solved trials, or by each judged test), over the rounds both have
completed, at level ``alpha / K`` with ``K`` the number of variants: when ``i`` is no better, its
test crosses within the race's horizon with probability at most ``alpha / K``.  The thresholds are
calibrated to the horizon the race declared (``max``, see :mod:`horizon`); a race that outgrows it
(``max`` raised after it began, or retried attempts beyond it) falls back to Ville's threshold on the
two-sample product bet, an e-process valid at any horizon, and says so.

Variant ``j`` is eliminated as soon as some variant still in the race crosses against it.  Why this
is valid: the pair's test uses only its own rounds, so stopping the race early only stops it.  The
best variant ``b`` can only be eliminated by a crossing of one of its ``K - 1`` tests: probability at
most ``(K - 1) alpha / K < alpha`` (with several tied best variants, losing all ``r`` of them takes
``r`` crossings among ``r (K - 1)`` tests: by Markov's inequality on their count, again at most
``(K - 1) alpha / K``).  When all variants are equal, each of the ``K (K - 1)`` tests crosses with
probability at most ``alpha / K``, and declaring a winner takes ``K - 1`` eliminations, hence ``K - 1``
crossings: by Markov's inequality on the number of crossings, probability at most
``K (K - 1) (alpha / K) / (K - 1) = alpha``.

The race is decided when one variant is left (``one_left``); when every pair still in the race has
its interval inside ``[-margin, margin]`` (``equivalent``; the intervals are the paired betting
confidence sequences below, and a false claim needs, for a pair whose means differ by more than
``margin``, its one bound on the wrong side to fail, probability ``alpha / K`` per such pair); or when
every variant still in the race has ``max_trials`` trials (``max``).

The intervals: for two variants, round ``t`` gives the paired difference mapped to [0, 1],
``z_t = (x_t - y_t + 1) / 2``, and we bet on its mean as in Waudby-Smith & Ramdas ("Estimating means
of bounded random variables by betting", JRSS-B 2024, hedged capital with a predictable plug-in
bet); ``L_t = inf {m: K+_t(m) < K / alpha}`` is a lower confidence sequence for the mean of ``z``,
valid at every time by Ville's inequality, and the difference's interval is ``[2 L_t - 1, 2 U_t - 1]``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Literal

from ..model.spec import BY_CHOICES, By
from .counts import boundary
from .duels import Duels, Outcomes

#: The intervals' largest bet as a share of the most the bettor could stake without risking ruin.
BET_CAP = 0.9

Decision = Literal["one_left", "equivalent", "max"]


@dataclasses.dataclass(frozen=True)
class PairInterval:
    """The confidence sequence for ``mean(first) - mean(second)`` after ``rounds`` paired rounds."""

    first: str
    second: str
    rounds: int
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class Elimination:
    """``variant`` left the race after ``trials`` trials: ``by`` beat it with confidence."""

    variant: str
    by: str
    trials: int
    sentence: str


@dataclasses.dataclass(frozen=True)
class RaceState:
    """Where the race stands after the scores seen so far.

    ``remaining`` are the variants still in the race (best mean first), ``eliminated`` those out, in
    the order they left; ``trials`` counts, per variant, the trials that entered the race (a trial
    run after its variant left, or after the decision, does not); ``decided`` says why the race is
    over (``None`` while it goes on) and ``reason`` says it in words; ``intervals`` are the final
    confidence sequences for every pair still in the race; ``method`` names the test and its horizon.
    """

    remaining: tuple[str, ...]
    eliminated: tuple[Elimination, ...]
    trials: Mapping[str, int]
    decided: Decision | None
    reason: str
    intervals: tuple[PairInterval, ...]
    max_trials: int
    method: str = ""  # the pairwise test in words, and the horizon its thresholds hold for

    def should_run(self, variant: str) -> bool:
        """Whether ``variant``'s next trial is still needed."""
        return self.decided is None and variant in self.remaining and self.trials[variant] < self.max_trials

    @property
    def winner(self) -> str | None:
        """The last variant left, when the race was decided that way."""
        return self.remaining[0] if self.decided == "one_left" else None


def race_state(
    scores: Mapping[str, Sequence[float]],
    *,
    alpha: float = 0.05,
    margin: float = 0.0,
    max_trials: int = 12,
    by: By = "score",
    tests: Mapping[str, Sequence[Mapping[str, bool]]] | None = None,
    horizon: int | None = None,
) -> RaceState:
    """Replay the race over ``scores`` (variant -> its trial scores in trial order) and return its state.

    Round ``t`` holds every variant's ``t``-th trial; a pair of variants compares only the rounds
    both have completed, so a variant with a trial missing simply compares fewer rounds.  Every
    variant of the race must be a key, even with no scores yet: the number of variants sets the
    confidence each comparison needs.  ``by: solved`` compares solved trials (score 1), ``by: tests``
    each judged test (``tests``: per variant, per trial, test -> passed).  ``horizon`` is the ``max``
    the race was declared with, when it differs from ``max_trials`` (see the module docstring).
    """
    _check(scores, alpha, margin, max_trials, by)
    declared = horizon or max_trials
    values = {name: [float(s) for s in scores[name][:max_trials]] for name in sorted(scores)}
    per_test = {name: list((tests or {}).get(name, ()))[:max_trials] for name in values}
    run = replay(Outcomes(values, per_test), alpha=alpha, margin=margin, max_trials=max_trials, by=by, horizon=declared)
    level = math.log(len(values) / alpha)  # the intervals' threshold: K / alpha
    remaining = sorted(run.remaining, key=lambda name: (-_mean(values[name][: run.trials[name]]), name))
    intervals = tuple(
        _interval(values, first, second, max(run.trials.values(), default=0), level)
        for index, first in enumerate(remaining)
        for second in remaining[index + 1 :]
    )
    return RaceState(
        remaining=tuple(remaining),
        eliminated=run.eliminated,
        trials=run.trials,
        decided=run.decided,
        reason=_reason(run.decided, remaining, margin, max_trials, alpha),
        intervals=intervals,
        max_trials=max_trials,
        method=run.method,
    )


@dataclasses.dataclass(frozen=True)
class Replay:
    """The race's decisions over some outcomes, without the words and intervals :class:`RaceState` adds."""

    remaining: tuple[str, ...]
    eliminated: tuple[Elimination, ...]
    trials: dict[str, int]
    decided: Decision | None
    method: str


def replay(outcomes: Outcomes, *, alpha: float, margin: float, max_trials: int, by: By, horizon: int) -> Replay:
    """Run the race's rounds over ``outcomes`` (checked, at most ``max_trials`` per variant): the procedure itself.

    :func:`race_state` and the benchmark both call it, so what is measured is what runs.
    """
    values = outcomes.scores
    beyond = max_trials > horizon or any(len(v) > horizon for v in values.values())
    duels = Duels(by, outcomes, alpha / len(values), horizon, calibrated=not beyond)
    level = math.log(len(values) / alpha)
    remaining = list(values)
    eliminated: list[Elimination] = []
    used = dict.fromkeys(values, 0)
    decided: Decision | None = None
    last_round = max((len(v) for v in values.values()), default=0)
    for t in range(1, last_round + 1):
        for name in remaining:
            used[name] = min(t, len(values[name]))
        verdicts = {
            (winner, loser): verdict
            for winner in remaining
            for loser in remaining
            if winner != loser and (verdict := duels.verdict(winner, loser, t)) is not None
        }
        beaten = sorted({loser for _, loser in verdicts})
        # A cycle of "beats" (possible in principle, as each pair has its own test) would empty the race:
        # then nobody is eliminated this round.
        if len(beaten) == len(remaining):
            beaten = []
        for loser in beaten:
            by_whom = max((w for w in remaining if (w, loser) in verdicts), key=lambda w: verdicts[w, loser].strength)
            eliminated.append(Elimination(loser, by_whom, used[loser], verdicts[by_whom, loser].sentence))
        remaining = [name for name in remaining if name not in beaten]
        decided = _decision(values, remaining, used, t, max_trials, margin, level)
        if decided:
            break
    method = duels.method(_percent(alpha))
    if max_trials > horizon:
        method += f"; max raised from {horizon} to {max_trials} after the race began"
    elif beyond:
        method += f"; retried attempts took the race past its declared {horizon} trials"
    return Replay(tuple(remaining), tuple(eliminated), used, decided, method)


def confidence_sequence(z: Sequence[float], *, alpha: float) -> tuple[float, float]:
    """The betting confidence sequence for the mean of ``z`` (values in [0, 1]) after all of them.

    Each end misses the mean with probability at most ``alpha`` at any time, so the interval as a
    whole has confidence ``1 - 2 alpha`` (a union bound over the two ends).  ``(0, 1)`` before any data.
    """
    level = math.log(1 / alpha)
    flipped = [1 - value for value in z]
    # Capital is nonincreasing in m: the safe end of each side is the low end of its bracket.
    low = boundary(lambda m: _log_capital(z, m, level) >= level, tolerance=1e-9)[0]
    high = 1 - boundary(lambda m: _log_capital(flipped, m, level) >= level, tolerance=1e-9)[0]
    return low, high


def _decision(
    values: Mapping[str, Sequence[float]],
    remaining: Sequence[str],
    used: Mapping[str, int],
    t: int,
    max_trials: int,
    margin: float,
    level: float,
) -> Decision | None:
    if len(remaining) == 1:
        return "one_left"
    if margin > 0:
        pairs = [(first, second) for index, first in enumerate(remaining) for second in remaining[index + 1 :]]
        intervals = (_interval(values, first, second, t, level) for first, second in pairs)
        if all(-margin < pair.low and pair.high < margin for pair in intervals):
            return "equivalent"
    if all(used[name] >= max_trials for name in remaining):
        return "max"
    return None


def _reason(decided: Decision | None, remaining: Sequence[str], margin: float, max_trials: int, alpha: float) -> str:
    if decided == "one_left":
        return f"{remaining[0]} is the only variant left"
    if decided == "equivalent":
        return f"{', '.join(remaining)} are within {margin:g} of each other ({_percent(alpha)} confidence sequences)"
    if decided == "max":
        return f"{', '.join(remaining)} reached {max_trials} trials each without a decision"
    return f"{', '.join(remaining)} still racing"


def _rounds(values: Mapping[str, Sequence[float]], first: str, second: str, t: int) -> list[float]:
    """The pair's complete rounds up to ``t``, as ``z = (x - y + 1) / 2`` in [0, 1]."""
    # zip stops at the shorter one: a round counts only when both variants have completed it.
    return [(x - y + 1) / 2 for x, y in zip(values[first][:t], values[second][:t], strict=False)]


def _interval(values: Mapping[str, Sequence[float]], first: str, second: str, t: int, level: float) -> PairInterval:
    z = _rounds(values, first, second, t)
    low, high = confidence_sequence(z, alpha=math.exp(-level))
    return PairInterval(first, second, len(z), 2 * low - 1, 2 * high - 1)


def _log_capital(z: Sequence[float], m: float, level: float) -> float:
    """``log K+_t(m)``: the log-wealth of betting, round by round, that the mean of ``z`` exceeds ``m``.

    The bet is Waudby-Smith & Ramdas's predictable plug-in, ``sqrt(2 level / (var_{s-1} s log(1 + s)))``
    with ``level = log(1 / a)`` for a one-sided level ``a``, capped at ``BET_CAP / m``; ``var_{s-1}``
    uses only the rounds before ``s`` (with a prior of one pseudo-round at mean 1/2, variance 1/4).
    """
    total, sum_x, sum_squares = 0.0, 0.5, 0.25
    for s, x in enumerate(z, 1):
        bet = min(math.sqrt(2 * level / (sum_squares / s * s * math.log1p(s))), BET_CAP / m)
        total += math.log1p(bet * (x - m))
        sum_x += x
        sum_squares += (x - sum_x / (s + 1)) ** 2
    return total


def _percent(alpha: float) -> str:
    return f"{100 * (1 - alpha):g}%"


def _mean(scores: Sequence[float]) -> float:
    return math.fsum(scores) / len(scores) if scores else 0.0


def _check(scores: Mapping[str, Sequence[float]], alpha: float, margin: float, max_trials: int, by: str) -> None:
    problems = []
    if by not in BY_CHOICES:
        problems.append(f"by must be one of {', '.join(BY_CHOICES)}, got {by!r}")
    if not scores:
        problems.append("need at least one variant")
    for name, values in scores.items():
        if not all(0 <= s <= 1 for s in values):
            problems.append(f"variant {name!r}: scores must lie in [0, 1], got {list(values)!r}")
    if not 0 < alpha < 1:
        problems.append(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    if not 0 <= margin < 1:
        problems.append(f"margin must be in [0, 1), got {margin!r}")
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        problems.append(f"max_trials must be an int >= 1, got {max_trials!r}")
    if problems:
        raise ValueError("race_state: " + "; ".join(problems))
