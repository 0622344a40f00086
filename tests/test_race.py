"""The sequential race: its confidence sequences cover, at every time, and its decisions follow by hand."""

from __future__ import annotations

import math
import random

import pytest

from pytest_parallel_explore.evidence.race import _log_capital, confidence_sequence, race_state


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_confidence_sequence_covers_the_mean_at_a_fixed_size(p: float) -> None:
    # Each end misses with probability at most a = 0.05, so the interval misses at most 10% of the time.
    rng = random.Random(7)
    misses = 0
    for _ in range(400):
        low, high = confidence_sequence([float(rng.random() < p) for _ in range(10)], alpha=0.05)
        misses += not low <= p <= high
    assert misses / 400 <= 0.10 + 3 * math.sqrt(0.1 * 0.9 / 400)


@pytest.mark.parametrize("draw", ["bernoulli", "uniform"])
def test_confidence_sequence_is_time_uniform(draw: str) -> None:
    # The share of sequences whose lower end EVER rises above the true mean, over 40 looks, stays below a:
    # a fixed-time interval re-checked 40 times would exceed it several times over.
    rng = random.Random(11)
    a, sims, looks = 0.1, 600, 40
    level = math.log(1 / a)
    ever = 0
    for _ in range(sims):
        z = [float(rng.random() < 0.5) if draw == "bernoulli" else rng.random() for _ in range(looks)]
        # The lower end exceeds 0.5 exactly when the capital at 0.5 reaches 1 / a (it is monotone in m).
        ever += any(_log_capital(z[:t], 0.5, level) >= level for t in range(1, looks + 1))
    assert ever / sims <= a + 3 * math.sqrt(a * (1 - a) / sims)


def test_confidence_sequence_ends_match_the_capital_test() -> None:
    z = [1.0, 0.5, 1.0, 1.0, 0.0, 1.0, 1.0, 0.5]
    low, high = confidence_sequence(z, alpha=0.05)
    level = math.log(20)
    assert 0 < low < sum(z) / len(z) < high < 1
    assert _log_capital(z, low - 1e-6, level) >= level > _log_capital(z, low + 1e-6, level)
    flipped = [1 - v for v in z]
    assert _log_capital(flipped, 1 - high - 1e-6, level) >= level > _log_capital(flipped, 1 - high + 1e-6, level)
    assert confidence_sequence([], alpha=0.05) == (0.0, pytest.approx(1.0))


def test_a_clear_winner_eliminates_the_others_after_four_rounds() -> None:
    # good always scores 1, the others 0.  Scores in [0, 1] use the product bet: its stake is capped at
    # 0.95 / 0.5 = 1.9, so a round multiplies the wealth by up to 1.95^2; the threshold is simulated for 12
    # rounds at 5% / 3.
    state = race_state({"good": [1.0] * 12, "weak": [0.0] * 12, "poor": [0.0] * 12})
    assert state.decided == "one_left" and state.winner == "good"
    assert state.remaining == ("good",)
    assert [(e.variant, e.by, e.trials) for e in state.eliminated] == [("poor", "good", 4), ("weak", "good", 4)]
    assert state.eliminated[1].sentence == "weak: mean score 0.00 against 1.00 for good after 4 trials each"
    assert dict(state.trials) == {"good": 4, "poor": 4, "weak": 4}
    assert state.reason == "good is the only variant left"
    assert state.method == "two-sample product bets, threshold simulated for 12 rounds, 95%"
    assert not state.should_run("good") and not state.should_run("weak")


def test_solved_trials_decide_by_the_exact_fisher_boundary() -> None:
    # 4/4 against 0/4: the one-sided Fisher p is 1 / C(8, 4) = 1/70, inside the boundary for 12 rounds at 2.5%;
    # 3/3 against 0/3 (p = 1/20) is not.
    scores = {"good": [1.0] * 12, "weak": [0.0] * 12}
    assert race_state({n: v[:3] for n, v in scores.items()}, by="solved").eliminated == ()
    state = race_state(scores, by="solved")
    assert [(e.variant, e.trials) for e in state.eliminated] == [("weak", 4)]
    assert state.eliminated[0].sentence == "weak: solved 0/4 trials against 4/4 for good"
    assert state.method == "one-sided Fisher exact tests, threshold exact for 12 rounds, 95%"
    # Solved means a score of 1: 0.9 every time solves nothing.
    assert race_state({"good": [1.0] * 12, "close": [0.9] * 12}, by="solved").winner == "good"


def test_a_test_failed_every_time_decides_by_tests_and_says_which() -> None:
    passes = {"t::a": True, "t::b": True, "t::c": True}
    tests = {"good": [passes] * 12, "bad": [{**passes, "t::b": False}] * 12}
    scores = {"good": [1.0] * 12, "bad": [2 / 3] * 12}
    state = race_state(scores, by="tests", tests=tests)
    assert state.winner == "good" and dict(state.trials) == {"bad": 5, "good": 5}
    assert state.eliminated[0].sentence == "bad fails t::b in 5/5 trials; good passes it in 5/5"
    assert state.method.endswith("each judged test at 95% / 3 (Bonferroni)")
    # The same scores by score: 0.67 every time against 1.00 every time is a weaker case than 5/5 against 0/5.
    assert race_state(scores).trials["bad"] > 5
    # Trials not judged yet (no test outcomes at all) decide nothing.
    unjudged = race_state(scores, by="tests", tests={"good": [{}] * 12, "bad": [{}] * 12})
    assert unjudged.eliminated == () and unjudged.decided == "max"


def test_raising_max_after_the_race_began_falls_back_to_villes_threshold() -> None:
    scores = {"good": [1.0] * 12, "weak": [0.3] * 12, "poor": [0.3] * 12}
    raised = race_state(scores, max_trials=20, horizon=12)
    assert raised.method.endswith("; max raised from 12 to 20 after the race began")
    assert "Ville's threshold" in raised.method
    # Ville's threshold 3 / 0.05 = 60 is stricter than the one calibrated to 12 rounds: later eliminations.
    assert raised.trials["weak"] > race_state(scores).trials["weak"]
    # A race declared longer than it now runs keeps its calibration (fewer rounds only cross less often).
    assert "threshold simulated for 30 rounds" in race_state(scores, horizon=30).method


def test_the_state_is_a_pure_function_of_the_rounds_so_far() -> None:
    scores = {"good": [1.0] * 12, "weak": [0.0] * 12, "poor": [0.0] * 12}
    after_three = race_state({name: values[:3] for name, values in scores.items()})
    assert after_three.decided is None and after_three.eliminated == ()
    assert all(after_three.should_run(name) for name in scores)
    assert after_three.reason == "good, poor, weak still racing"
    # Trials that ran after the decision (xdist ran them meanwhile) change nothing.
    assert race_state({name: values[:7] for name, values in scores.items()}) == race_state(scores)
    # So does the order in which the variants are given.
    assert race_state(dict(reversed(scores.items()))) == race_state(scores)


def test_a_pair_compares_only_the_rounds_both_completed() -> None:
    # weak lags with 3 trials: good vs weak has 3 complete rounds, too few, so weak stays in; poor goes.
    state = race_state({"good": [1.0] * 8, "weak": [0.0] * 3, "poor": [0.0] * 8})
    assert [e.variant for e in state.eliminated] == ["poor"]
    assert state.remaining == ("good", "weak") and state.decided is None
    assert state.should_run("weak") and dict(state.trials) == {"good": 8, "weak": 3, "poor": 4}
    (interval,) = state.intervals
    assert (interval.first, interval.second, interval.rounds) == ("good", "weak", 3)
    assert interval.low < 0 and interval.high == pytest.approx(1.0)


def test_equal_variants_race_to_the_maximum() -> None:
    state = race_state({"a": [1.0, 0.0] * 6, "b": [0.0, 1.0] * 6, "c": [1.0, 0.0] * 6}, max_trials=12)
    assert state.decided == "max" and state.eliminated == () and state.winner is None
    assert dict(state.trials) == {"a": 12, "b": 12, "c": 12}
    assert state.reason == "a, b, c reached 12 trials each without a decision"
    assert all(i.low < 0 < i.high for i in state.intervals)
    # Trials beyond max_trials are not looked at.
    assert race_state({"a": [1.0, 0.0] * 9, "b": [0.0, 1.0] * 9, "c": [1.0, 0.0] * 9}) == state


def test_equivalent_variants_stop_the_race_within_the_margin() -> None:
    state = race_state({"a": [0.8] * 12, "b": [0.8] * 12}, margin=0.5)
    assert state.decided == "equivalent" and state.trials["a"] < 12
    (interval,) = state.intervals
    assert -0.5 < interval.low <= 0 <= interval.high < 0.5
    assert state.reason == "a, b are within 0.5 of each other (95% confidence sequences)"
    assert race_state({"a": [0.8] * 12, "b": [0.8] * 12}).decided == "max"  # margin 0: never equivalent


@pytest.mark.parametrize("by", ["score", "solved"])
def test_all_equal_races_rarely_declare_a_winner(by: str) -> None:
    rng = random.Random(5)
    declared = sum(
        race_state({name: [float(rng.random() < 0.5) for _ in range(12)] for name in "ab"}, by=by).winner is not None
        for _ in range(400)
    )
    # At most alpha = 5% (the exact rate, for "solved", is 2 x 1.2%); 400 races: 3 standard errors above.
    assert declared / 400 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 400)


def test_race_state_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"variant 'a': scores must lie in \[0, 1\]"):
        race_state({"a": [1.5], "b": [0.0]})
    with pytest.raises(ValueError, match=r"alpha must be between 0 and 1.*max_trials must be an int >= 1"):
        race_state({"a": [1.0]}, alpha=2, max_trials=0)
    with pytest.raises(ValueError, match="at least one variant"):
        race_state({})
    with pytest.raises(ValueError, match="by must be one of score, solved, tests, got 'on'"):
        race_state({"a": [1.0]}, by="on")  # type: ignore[arg-type]
