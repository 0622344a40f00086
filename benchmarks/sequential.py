"""Fixed-n repeats against the sequential race, on simulated experiments with known success rates.

For each scenario, ``--sims`` experiments draw ``--max`` trial scores per variant from known
distributions (seeded).  Fixed-n uses all of them: it picks the variant with the best mean and
"declares a winner" when the Holm-adjusted trial-level test (Fisher's exact test on solved trials for
0/1 scores, else the permutation test on scores; the tests ``results.py`` reports) finds a significant
difference.  The race replays the same trials through :func:`race_state`, which uses only the trials
it needs; it declares a winner when one variant is left, and otherwise picks the best mean among
the variants still in the race.

    python benchmarks/sequential.py --sims 2000 --seed 0
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence

from pytest_parallel_explore.evidence.race import race_state
from pytest_parallel_explore.evidence.stats import fisher_exact, holm, permutation_test

Draw = Callable[[random.Random], float]


def bernoulli(p: float) -> Draw:
    return lambda rng: float(rng.random() < p)


def pass_rate(p: float, tests: int = 10) -> Draw:
    """A continuous score: the share of ``tests`` independent tests that pass, each with probability ``p``."""
    return lambda rng: sum(rng.random() < p for _ in range(tests)) / tests


SCENARIOS: dict[str, list[Draw]] = {
    "all equal (0.5, 0.5, 0.5)": [bernoulli(0.5)] * 3,
    "clearly best (0.9, 0.3, 0.3)": [bernoulli(0.9), bernoulli(0.3), bernoulli(0.3)],
    "slightly best (0.7, 0.5)": [bernoulli(0.7), bernoulli(0.5)],
    "pass rates, all equal (0.6 x 3)": [pass_rate(0.6)] * 3,
    "pass rates, best (0.8, 0.6, 0.6)": [pass_rate(0.8), pass_rate(0.6), pass_rate(0.6)],
}


def fixed_n(scores: dict[str, list[float]], alpha: float, rng: random.Random) -> tuple[str, bool]:
    """The best mean (ties broken at random) and whether a Holm-adjusted test finds any difference."""
    means = {name: statistics.fmean(values) for name, values in scores.items()}
    top = max(means.values())
    best = rng.choice(sorted(name for name, mean in means.items() if mean == top))
    p_values = [_p_value(scores[best], scores[other]) for other in scores if other != best]
    return best, any(p < alpha for p in holm(p_values))


def _p_value(a: Sequence[float], b: Sequence[float]) -> float:
    if all(s in (0.0, 1.0) for s in (*a, *b)):
        return fisher_exact(int(sum(a)), len(a), int(sum(b)), len(b))
    return permutation_test(a, b, resamples=500)


def simulate(draws: list[Draw], sims: int, max_trials: int, alpha: float, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    names = [f"v{i}" for i in range(len(draws))]
    true_best = "v0" if len({id(d) for d in draws}) > 1 else None
    fixed_wrong = fixed_declared = race_wrong = race_declared = 0
    race_trials: list[int] = []
    for _ in range(sims):
        scores = {name: [draw(rng) for _ in range(max_trials)] for name, draw in zip(names, draws, strict=True)}
        best, declared = fixed_n(scores, alpha, rng)
        fixed_wrong += true_best is not None and best != true_best
        fixed_declared += declared
        state = race_state(scores, alpha=alpha, max_trials=max_trials)
        race_trials.append(sum(state.trials.values()))
        race_declared += state.winner is not None
        race_wrong += true_best is not None and state.remaining[0] != true_best
    return {
        "fixed_wrong": fixed_wrong / sims,
        "fixed_declared": fixed_declared / sims,
        "fixed_trials": max_trials * len(draws),
        "race_wrong": race_wrong / sims,
        "race_declared": race_declared / sims,
        "race_mean": statistics.fmean(race_trials),
        "race_median": statistics.median(race_trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=2000, help="experiments per scenario (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max", type=int, default=12, dest="max_trials", help="trials per variant (default 12)")
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"seed {args.seed}, {args.sims} simulations per scenario, max {args.max_trials}, alpha {args.alpha}")
    print("P(wrong) = the chosen variant is not the true best; P(declared) = a winner is declared (fixed-n: a")
    print("Holm-adjusted trial-level test is significant; race: one variant left). Trials: total over variants.")
    header = ("scenario", "P(wrong) fixed", "race", "P(declared) fixed", "race", "trials fixed", "race mean", "median")
    rows = [header]
    for index, (name, draws) in enumerate(SCENARIOS.items()):
        r = simulate(draws, args.sims, args.max_trials, args.alpha, args.seed + index)
        rows.append(
            (
                name,
                f"{r['fixed_wrong']:.3f}" if "equal" not in name else "-",
                f"{r['race_wrong']:.3f}" if "equal" not in name else "-",
                f"{r['fixed_declared']:.3f}",
                f"{r['race_declared']:.3f}",
                f"{r['fixed_trials']}",
                f"{r['race_mean']:.1f}",
                f"{r['race_median']:g}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [f"{cell:>{width}}" for cell, width in zip(row, widths, strict=True)]
        print("  ".join([row[0].ljust(widths[0]), *cells[1:]]))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
