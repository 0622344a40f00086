"""The sequential race on simulated experiments: is it valid, how many trials does it use, how near the optimum?

Three tables, every cell seeded (``--seed``) so a rerun prints the same figures:

- validity: all variants equal (Bernoulli 0.1-0.9 raced by solved and by score; Beta(0.2, 0.2), uniform
  and pass rates of 10 tests raced by score), K = 2, 3, 5, max 12 and 30: P(a winner is declared) with
  the upper end of its 99% Clopper-Pearson interval, which must be at most alpha; and P(a wrong winner)
  where one variant is slightly better;
- efficiency: expected trials (with standard error), median, share stopped before max, P(correct winner
  declared), P(wrong winner declared), P(a variant tied for best eliminated); fixed-n at max on the same
  trials (declaring only when the best beats every other one, Holm-adjusted), and the equal-power fixed
  n: the fewest trials per variant with which fixed-n declares the best as often as the race did;
- without a cap: expected trials against the Garivier-Kaufmann lower bound.

    python benchmarks/sequential.py            # quick: 2,000 simulations per cell
    python benchmarks/sequential.py --full     # 20,000 per cell, as the figures in benchmarks/README.md
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Sequence
from typing import Any

from race_cells import (
    Scenario,
    bernoulli,
    beta,
    fixed_power,
    garivier_kaufmann,
    pass_rate,
    run_cell,
    scenario,
    uniform,
)

from pytest_parallel_explore.evidence.counts import clopper_pearson
from pytest_parallel_explore.evidence.duels import By

#: "No cap": far beyond these races' needs (about 8 times the bound's rounds at (0.8, 0.6, 0.6)) and every
#: calibrated horizon; it bounds only the rare race that lost its best variant and races equal ones.
NO_CAP = 1_000


RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
SCORED = (0.1, 0.5, 0.9)  # Bernoulli rates also raced by score (0/1 scores as the default key sees them)


def validity_cells() -> list[Scenario]:
    nulls: list[tuple[str, Any, tuple[By, ...]]] = [
        *((f"Bernoulli {p}", bernoulli(p), ("solved", "score") if p in SCORED else ("solved",)) for p in RATES),
        ("Beta(0.2, 0.2)", beta(0.2, 0.2), ("score",)),
        ("uniform", uniform(), ("score",)),
        ("pass rates 0.6", pass_rate(0.6), ("score",)),
    ]
    cells = [
        scenario(f"{name}, K={k}", [draw] * k, by, max_trials)
        for name, draw, bys in nulls
        for by in bys
        for k in (2, 3, 5)
        for max_trials in (12, 30)
    ]
    close = {
        "(0.5, 0.5, 0.45)": (0.5, 0.5, 0.45),
        "(0.55, 0.5, 0.05)": (0.55, 0.5, 0.05),
        "(0.55, 0.5, 0, 0, 0)": (0.55, 0.5, 0.0, 0.0, 0.0),
    }
    cells += [
        scenario(name, [bernoulli(p) for p in ps], "solved", max_trials)
        for name, ps in close.items()
        for max_trials in (12, 30)
    ]
    return cells


FIVE = (0.9, 0.5, 0.5, 0.3, 0.3)
#: name, scenario, the issue's target (at most this many trials, at least this P(correct)).
EFFICIENCY: list[tuple[Scenario, tuple[float, float] | None]] = [
    (scenario("(0.9, 0.3, 0.3)", [bernoulli(p) for p in (0.9, 0.3, 0.3)], "solved", 12), (27, 0.55)),
    (scenario("(0.9, 0.3, 0.3)", [bernoulli(p) for p in (0.9, 0.3, 0.3)], "solved", 30), (36, 0.97)),
    (scenario("pass rates (0.8, 0.6, 0.6)", [pass_rate(p) for p in (0.8, 0.6, 0.6)], "score", 30), (55, 0.95)),
    (
        scenario("(0.9, 0.5, 0.5, 0.3, 0.3)", [bernoulli(p) for p in (0.9, 0.5, 0.5, 0.3, 0.3)], "solved", 30),
        (90, 0.55),
    ),
    (scenario("(0.7, 0.5)", [bernoulli(p) for p in (0.7, 0.5)], "solved", 30), None),
    (scenario("(0.8, 0.6, 0.6)", [bernoulli(p) for p in (0.8, 0.6, 0.6)], "solved", 30), None),
    (scenario("12/12 against 0/12", [bernoulli(1.0), bernoulli(0.0)], "solved", 12), None),
]

UNCAPPED = [(0.9, 0.3, 0.3), (0.7, 0.5), (0.8, 0.6, 0.6)]


VALIDITY = validity_cells()

# A job names its cell by index: the cells' draws are closures, which do not pickle.


def _validity(job: tuple[int, int, str]) -> dict[str, Any]:
    index, sims, seed = job
    cell = VALIDITY[index]
    return {"index": index, **run_cell(cell, sims, f"{seed}:{cell.name}:{cell.by}:{cell.max_trials}")}


def _efficiency(job: tuple[int, int, str]) -> dict[str, Any]:
    index, sims, seed = job
    cell = EFFICIENCY[index][0]
    result = run_cell(cell, sims, f"{seed}:{cell.name}:{cell.max_trials}", fixed=True)
    # Equal power: the smallest n whose fixed-n power reaches the race's P(correct), by bisection.
    power_sims = min(sims, 2000 if cell.by == "solved" else 300)
    low, high = 1, 4 * cell.max_trials
    while low < high:
        middle = (low + high) // 2
        if fixed_power(cell, middle, power_sims, f"{seed}:power:{cell.name}:{middle}") >= result["correct"]:
            high = middle
        else:
            low = middle + 1
    return {**result, "equal_power": low * len(cell.draws), "power_sims": power_sims}


def _uncapped(job: tuple[tuple[float, ...], int, str]) -> dict[str, Any]:
    means, sims, seed = job
    cell = scenario(str(means), [bernoulli(p) for p in means], "solved", NO_CAP)
    return {"means": means, "bound": garivier_kaufmann(means, 0.05), **run_cell(cell, sims, f"{seed}:{means}")}


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="20,000 simulations per cell (default: 2,000)")
    parser.add_argument("--sims", type=int, help="simulations per cell (overrides --full)")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: the CPUs)")
    parser.add_argument("--only", choices=("validity", "efficiency", "uncapped"), action="append")
    args = parser.parse_args()
    sims = args.sims or (20_000 if args.full else 2_000)
    only = set(args.only or ("validity", "efficiency", "uncapped"))
    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"seed {args.seed}, {sims} simulations per cell, alpha 0.05, {args.jobs} processes, load {load:.1f}\n")
    with multiprocessing.Pool(args.jobs) as pool:
        if "validity" in only:
            print("Validity: P(declared) with all variants equal, P(wrong) with one slightly better;")
            print("the upper end of the one-sided 99% Clopper-Pearson interval must be at most alpha")
            rows: list[tuple[str, ...]] = [("cell", "by", "max", "P(declared)", "P(wrong)", "99% upper", "<= alpha")]
            for r in pool.imap(_validity, [(i, sims, args.seed) for i in range(len(VALIDITY))]):
                cell = VALIDITY[r["index"]]
                equal = len(set(cell.means)) == 1
                events = r["declared"] if equal else round(r["wrong"] * sims)
                upper = clopper_pearson(events, sims, confidence=0.98)[1]  # one-sided 99%
                rows.append(
                    (
                        cell.name,
                        cell.by,
                        str(cell.max_trials),
                        f"{r['declared'] / sims:.4f}",
                        "-" if equal else f"{r['wrong']:.4f}",
                        f"{upper:.4f}",
                        "yes" if upper <= 0.05 else "NO",
                    )
                )
            _table(rows)
        if "efficiency" in only:
            print("Efficiency (trials: total over the variants; fixed-n on the race's own trials at max)")
            header: tuple[str, ...] = ("scenario", "by", "max", "trials", "± se", "median", "early", "P(correct)")
            header += ("P(wrong)", "P(best out)", "fixed-n", "P(correct)", "equal power", "target")
            rows = [header]
            jobs = [(i, sims, args.seed) for i in range(len(EFFICIENCY))]
            for r, (cell, target) in zip(pool.imap(_efficiency, jobs), EFFICIENCY, strict=True):
                met = ""
                if target is not None:
                    met = f"<= {target[0]} / >= {target[1]}: " + (
                        "met" if r["mean"] <= target[0] and r["correct"] >= target[1] else "NOT met"
                    )
                rows.append(
                    (
                        cell.name,
                        cell.by,
                        str(cell.max_trials),
                        f"{r['mean']:.1f}",
                        f"{r['se']:.2f}",
                        f"{r['median']:g}",
                        f"{r['early']:.3f}",
                        f"{r['correct']:.3f}",
                        f"{r['wrong']:.4f}",
                        f"{r['best_out']:.4f}",
                        str(cell.max_trials * len(cell.draws)),
                        f"{r['fixed_correct']:.3f}",
                        str(r["equal_power"]),
                        met,
                    )
                )
            _table(rows)
        if "uncapped" in only:
            print(
                "Without a cap (Ville's threshold on the product bet) against the Garivier-Kaufmann bound, delta = 0.05"
            )
            rows = [("means", "trials", "± se", "median", "P(correct)", "GK bound", "ratio", "target <= 2.5x")]
            for r in pool.imap(_uncapped, [(m, sims, args.seed) for m in UNCAPPED]):
                ratio = r["mean"] / r["bound"]
                rows.append(
                    (
                        str(r["means"]),
                        f"{r['mean']:.1f}",
                        f"{r['se']:.2f}",
                        f"{r['median']:g}",
                        f"{r['correct']:.4f}",
                        f"{r['bound']:.1f}",
                        f"{ratio:.2f}x",
                        "met" if ratio <= 2.5 else "NOT met",
                    )
                )
            _table(rows)
    print(f"({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
