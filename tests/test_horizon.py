"""The race's thresholds: exact for 0/1 outcomes (checked against brute force), and the bet behind them valid."""

from __future__ import annotations

import itertools
import math

import pytest

from pytest_parallel_explore.evidence import bets, horizon
from pytest_parallel_explore.evidence.bets import VILLE_OPENING, ProductBet, log_wealth
from pytest_parallel_explore.evidence.race import race_state


def _brute_force(table: horizon.Table, threshold: float, p: float, q: float) -> float:
    """P(the Fisher statistic crosses within the horizon), summed over every sequence of 0/1 outcomes."""
    rounds = len(table) - 1
    total = 0.0
    for xs in itertools.product((0, 1), repeat=rounds):
        for ys in itertools.product((0, 1), repeat=rounds):
            weight = math.prod(p if x else 1 - p for x in xs) * math.prod(q if y else 1 - q for y in ys)
            if any(table[t][sum(xs[:t])][sum(ys[:t])] >= threshold for t in range(1, rounds + 1)):
                total += weight
    return total


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.7])
def test_the_crossing_programme_matches_brute_force(rate: float) -> None:
    table = horizon.fisher_statistic(4)
    for threshold in (1.5, 2.5, 3.5):
        exact = _brute_force(table, threshold, rate, rate)
        assert horizon.crossing_probability(table, threshold, rate) == pytest.approx(exact, rel=1e-12)


def test_a_null_with_the_second_variant_better_crosses_less_than_a_common_rate() -> None:
    # The monotone statistic makes common rates the worst case over the whole null p <= q.
    table = horizon.fisher_statistic(4)
    threshold = horizon.solved_threshold(4, 0.05)
    worst_common = max(horizon.crossing_probability(table, threshold, r / 20) for r in range(1, 20))
    for p, q in [(0.3, 0.5), (0.5, 0.6), (0.1, 0.9), (0.6, 0.61)]:
        assert _brute_force(table, threshold, p, q) <= worst_common + 1e-12


@pytest.mark.parametrize(("rounds", "level"), [(6, 0.025), (12, 0.05 / 3)])
def test_the_solved_threshold_is_the_smallest_within_the_level(rounds: int, level: float) -> None:
    table = horizon.fisher_statistic(rounds)
    threshold = horizon.solved_threshold(rounds, level)
    rates = [r / 100 for r in range(1, 100)]
    assert max(horizon.crossing_probability(table, threshold, r) for r in rates) <= level
    # A threshold the smallest outcome step lower lets some common rate cross more often than the level.
    lower = max(v for row in table[1:] for cells in row for v in cells if v < threshold - 1e-9)
    assert max(horizon.crossing_probability(table, lower, r) for r in rates) > level
    # ... and the calibrated threshold is well below the unbounded-horizon one: the race spends its alpha.
    assert threshold < horizon.ville(level) + math.log(rounds)


def test_the_fisher_statistic_is_the_one_sided_p_value_tightened_with_the_rounds() -> None:
    table = horizon.fisher_statistic(4)
    assert table[4][4][0] == pytest.approx(math.log(70) - math.log(4) / 2)  # 4/4 against 0/4: p = 1 / C(8, 4)
    assert table[3][3][0] == pytest.approx(math.log(20) - math.log(3) / 2)
    assert table[4][2][2] == pytest.approx(-math.log(53 / 70) - math.log(4) / 2)  # P(A >= 2 | 4 solved of 8)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ({0.0: 0.5, 1.0: 0.5}, {0.0: 0.5, 1.0: 0.5}),
        ({0.2: 0.5, 0.6: 0.5}, {0.4: 1.0}),
        ({0.0: 0.7, 1.0: 0.3}, {0.3: 0.5, 0.5: 0.5}),
        ({0.1: 0.2, 0.9: 0.8}, {1.0: 0.8, 0.5: 0.2}),
    ],
)
@pytest.mark.parametrize("opening", [0.0, VILLE_OPENING])
def test_the_product_bet_does_not_grow_on_average_under_the_null(
    x: dict[float, float], y: dict[float, float], opening: float
) -> None:
    # mean(x) <= mean(y): the expected wealth after three rounds, summed exactly over every outcome, is at most 1.
    assert sum(v * w for v, w in x.items()) <= sum(v * w for v, w in y.items()) + 1e-12
    outcomes = [(vx, vy, wx * wy) for vx, wx in x.items() for vy, wy in y.items()]
    expected = 0.0
    for path in itertools.product(outcomes, repeat=3):
        weight = math.prod(w for _, _, w in path)
        expected += weight * math.exp(log_wealth([p[0] for p in path], [p[1] for p in path], opening))
    assert expected <= 1 + 1e-9


def test_the_product_bet_wins_up_to_a_factor_of_four_a_round() -> None:
    bet = ProductBet()
    bet.step(1.0, 0.0)  # the first stake is shrunk by the prior
    before = bet.log_wealth
    growth = bet.step(1.0, 0.0) - before
    assert math.log(2) < growth < math.log(4)  # a paired bet could at most double
    assert bet.rounds == 2


def test_under_villes_threshold_the_first_round_already_bets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert log_wealth([1.0], [0.0]) == 0.0  # the prior's stake: nothing
    assert log_wealth([1.0], [0.0], VILLE_OPENING) == pytest.approx(2 * math.log(1 + VILLE_OPENING / 2))
    # max 60 is beyond the calibrated horizons: Ville's threshold, with the opening stake.
    scores = {"good": [1.0] * 60, "weak": [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0] * 6}
    opened = race_state(scores, max_trials=60)
    assert "Ville's threshold" in opened.method
    monkeypatch.setattr(bets, "VILLE_OPENING", 0.0)
    assert opened.trials["weak"] < race_state(scores, max_trials=60).trials["weak"]


def test_the_score_threshold_is_below_villes_and_the_same_in_every_process() -> None:
    threshold = horizon.score_threshold(12, 0.05 / 3)
    assert 0 < threshold < horizon.ville(0.05 / 3)
    assert horizon.score_threshold(12, 0.05 / 3) == threshold  # seeded: every process agrees
