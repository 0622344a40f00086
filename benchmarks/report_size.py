"""How large ``report.html`` gets, and how long it takes to render, at 1,000 tests x 30 trials.

Builds a synthetic experiment (10 variants x 3 repeats by default, a baseline with failing, erroring,
skipped and flaky tests, per-trial patches of a few hundred lines), turns it into results with the
plugin's own ``build_results`` and renders the page with ``render_report``.

    python benchmarks/report_size.py [--tests 1000] [--variants 10] [--repeat 3] [--out report.html]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from pytest_parallel_explore.model.baseline import Baseline
from pytest_parallel_explore.model.paths import ExperimentPaths
from pytest_parallel_explore.model.record import AgentStats, DiffStats, Status, TestStats, TrialRecord
from pytest_parallel_explore.report.html import render_report
from pytest_parallel_explore.report.model import ExperimentInfo, Results
from pytest_parallel_explore.report.results import build_results
from pytest_parallel_explore.scoring.baseline import judge

BASE_COMMIT = "3f1c2a9be0d4c7e15a2b8f60d1e9c3a4b5f6a7c8"
OUTCOMES = ("passed", "failed", "error", "skipped")


def node_ids(count: int) -> list[str]:
    """Test ids shaped like a real suite's: files, classes, parametrized cases."""
    ids = []
    for i in range(count):
        module = f"tests/{'api' if i % 3 else 'core'}/test_module_{i // 40:02d}.py"
        if i % 4 == 0:
            ids.append(f"{module}::TestBehaviour{i % 7}::test_handles_case_{i}")
        elif i % 4 == 1:
            ids.append(f"{module}::test_parametrized_{i // 8}[input{i % 8}-expected<{i % 3}>]")
        else:
            ids.append(f"{module}::test_function_number_{i}_does_what_it_says")
    return ids


def suite(cases: dict[str, dict[str, object]]) -> TestStats:
    """A test run with these per-test outcomes, counted."""
    outcomes = [c["outcome"] for c in cases.values()]
    return TestStats(
        passed=outcomes.count("passed"),
        failed=outcomes.count("failed"),
        errors=outcomes.count("error"),
        skipped=outcomes.count("skipped"),
        cases=cases,
    )


def synthetic_patch(rng: random.Random, trial: str) -> tuple[str, DiffStats]:
    lines: list[str] = []
    files = [f"src/package/module_{rng.randrange(40)}.py" for _ in range(rng.randint(3, 8))]
    insertions = deletions = 0
    for path in files:
        lines += [f"diff --git a/{path} b/{path}", "index 1234567..89abcde 100644", f"--- a/{path}", f"+++ b/{path}"]
        for hunk in range(rng.randint(2, 5)):
            lines.append(f"@@ -{hunk * 40 + 1},12 +{hunk * 40 + 1},14 @@ def function_{hunk}(value):")
            for n in range(rng.randint(8, 30)):
                kind = rng.choice(" +-  ")
                text = f"    if value < {n} and flags & MASK:  # {trial} <edited> line {n}"
                lines.append(kind + text)
                insertions += kind == "+"
                deletions += kind == "-"
    return "\n".join(lines) + "\n", DiffStats(len(files), insertions, deletions, sorted(set(files)))


def experiment(tests: int, variants: int, repeat: int, root: Path, seed: int = 0) -> Results:
    """Write the trials' patches under ``root`` and return the experiment's results."""
    rng = random.Random(seed)
    ids = node_ids(tests)
    base = {n: rng.choices(OUTCOMES, weights=(70, 24, 3, 3))[0] for n in ids}
    flaky = set(rng.sample(ids, max(1, tests // 60)))
    base_stats = suite({n: {"outcome": o, "duration": 0.01} for n, o in base.items()})
    base_cases = {n: o for n, o in base.items() if n not in flaky}
    judged = frozenset(n for n, o in base_cases.items() if o != "skipped")
    baseline = Baseline("k", BASE_COMMIT, 2, base_cases, frozenset(flaky), base_stats, judged)
    paths = ExperimentPaths(root)
    paths.results.mkdir(parents=True, exist_ok=True)
    records = []
    for v in range(variants):
        skill = rng.uniform(0.3, 0.9)
        for k in range(1, repeat + 1):
            name = f"approach_{v:02d}.{k}" if repeat > 1 else f"approach_{v:02d}"
            record = TrialRecord(
                experiment="bench",
                name=name,
                variant=f"approach_{v:02d}",
                round=k,
                description=f"Approach {v}: a description of what this variant is asked to try.",
                status=Status.DONE,
                branch=f"explore/bench/{name}",
                base_commit=BASE_COMMIT,
                commit="0" * 40,
                agent=AgentStats(
                    "anthropic",
                    "claude-sonnet-5-5",
                    0,
                    rng.uniform(60, 900),
                    rng.randint(5, 60),
                    rng.randint(10**5, 10**6),
                    rng.randint(10**4, 10**5),
                    cost_usd=rng.uniform(0.1, 2),
                ),
            )
            if v == variants - 1 and k == 1:
                record.status, record.reason = Status.TIMEOUT, "the agent did not finish in 1800s"
                records.append(record)
                continue
            cases = {}
            for n, before in base.items():
                if rng.random() < 0.002:
                    continue  # removed
                now = ("passed" if rng.random() > 0.01 else "failed") if before == "passed" else before
                if before in ("failed", "error") and rng.random() < skill:
                    now = "passed"
                cases[n] = {"outcome": now, "duration": 0.01}
            cases[f"tests/test_new_{name}.py::test_added"] = {
                "outcome": rng.choice(("passed", "failed")),
                "duration": 0,
            }
            record.tests = suite(cases)
            record.verdicts, record.broken_tests = judge(baseline, record.tests)  # as a trial is judged
            record.score = record.tests.pass_rate
            if v == 1 and k == 1:
                record.tampering = ["tests/api/test_module_01.py"]
                record.flags.append("tampering: changed 1 protected files, restored before scoring")
            patch, record.diff = synthetic_patch(rng, name)
            paths.trial_file(name, ".patch").write_text(patch)
            records.append(record)
    info = ExperimentInfo(
        experiment="bench",
        base_commit=BASE_COMMIT,
        task="Make the whole suite pass without breaking anything that works.",
        source="variants.yaml",
        base="HEAD",
        score_command="{python} -m pytest -q",
        plugin_version="bench",
    )
    return build_results(info, records, baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5, help="renders to time (the median is printed)")
    parser.add_argument("--out", type=Path, help="also write the page here, to look at it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        results = experiment(args.tests, args.variants, args.repeat, root)
        built = time.perf_counter() - started
        paths = ExperimentPaths(root)
        times, html = [], ""
        for _ in range(args.runs):
            started = time.perf_counter()
            html = render_report(results, paths)
            times.append(time.perf_counter() - started)
    size = len(html.encode("utf-8"))
    trials = len(results.trials)
    print(f"report.html for {args.tests} tests x {trials} trials ({args.variants} variants x {args.repeat} repeats)")
    print(f"  size:        {size:,} bytes ({size / 1e6:.2f} MB)")
    median = statistics.median(times) * 1000
    print(f"  render time: {median:.0f} ms (median of {args.runs} renders; results built in {built:.1f}s)")
    if args.out:
        args.out.write_text(html, encoding="utf-8")
        print(f"  written to:  {args.out}")


if __name__ == "__main__":
    main()
