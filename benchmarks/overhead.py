"""What pytest-parallel-explore costs on top of doing the same work by hand.

The script builds a synthetic project in a temporary directory (a committed
git repository of a few thousand small files, and a suite of a few hundred
fast, passing tests), then, for each trial count N, measures two ways of
getting N scored worktrees with the same concurrency C:

plugin
    ``python -m pytest --explore bench-N --variants FILE -n C -p no:cacheprovider``,
    with N variants whose agent writes a file named after its trial (so no two
    trials leave the same tree) and whose score command is
    ``{python} -m pytest -q -p no:cacheprovider tests``: the wall
    time of the whole pytest process.  The run must exit 0 and its
    ``results.json`` must show N trials, each ``done`` with every test passed,
    or the script stops: the figures are of real work.

by hand
    A pool of C threads, each running, per trial, ``git worktree add -b
    <branch> <path> HEAD``, writing the same file, and then ``python -m pytest
    -q -p no:cacheprovider tests`` in that worktree: the wall time of the whole batch.  The adds
    take turns (concurrent ones race on ``.git/worktrees``), as in the plugin.  The suite
    runs in the environment the plugin gives it (worktree on ``PYTHONPATH``,
    ``PYTHONDONTWRITEBYTECODE=1``), so both sides run the very same tests.

Four more scenarios are measured unless ``--methods`` leaves them out: the
plugin with every agent writing the same file (the score cache scores the tree
once), the plugin with ``sandbox: none``, the plugin in an experiment after the
first on the same base commit (the baseline comes from the score cache), and ``xdist alone`` (``pytest -n C``
over N empty tests: xdist's own start-up and shutdown, a floor for any plugin
that runs on it).

Every measurement starts from a fresh copy of the committed project (no
worktree, branch or data directory left by another), after one untimed
warm-up of each method.  The two methods alternate which goes first, and each
(N, method) pair is measured ``--repeat`` times; the table shows medians.

How to read it: ``plugin/by hand`` is the ratio of the median wall times;
the CPU columns add up the user and system time of every process each method
started (xdist workers, git, the suites), which other work on the machine
barely changes: when the script warns that the machine was shared, trust
them rather than the wall times.  The plugin does more than the
hand-written loop: it scores the base commit first (``score.baseline_runs``,
default 2 runs, one after another), starts C xdist workers, commits each
trial's change and writes its patch, asks pytest for a junit report, saves a
progress file after every step and writes the report at the end.  Those are
fixed costs (baseline, workers, report) and per-trial costs (git, files); the
breakdown below the table, taken from the median plugin run's
``results/*_progress.json`` and ``baseline.json``, tells them apart.

Usage::

    python benchmarks/overhead.py                    # N = 2 8 32, concurrency 3, 3 repeats
    python benchmarks/overhead.py 2 8 32 --concurrency 3 --repeat 5
    python benchmarks/overhead.py 8 --files 10000 --tests 1000 --keep
    python benchmarks/overhead.py --tmpdir /dev/shm  # on a tmpfs: no disk in the figures

Where the page cache is small or reclaimed eagerly (some VMs), a run on disk
is dominated by I/O and varies a lot from run to run; ``--tmpdir /dev/shm``
measures the plugin rather than the disk.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

SCORE_COMMAND = "{python} -m pytest -q -p no:cacheprovider tests"
SUITE_ARGS = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")

#: Variables of an enclosing pytest run that would change how the measured commands behave.
_OUTER_PYTEST_VARIABLES = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    # Set on the machine the figures come from, not on a user's: with it every pytest process compiles
    # the plugin's modules again (about 0.3 s of CPU each). The suites set it themselves, both ways.
    "PYTHONDONTWRITEBYTECODE",
)
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "overhead-benchmark",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "overhead-benchmark",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
_PASSED = re.compile(r"\b(\d+) passed\b")


# -- the synthetic project ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    """The size of the synthetic project."""

    files: int  # committed files, tests included
    tests: int  # passing tests in total
    test_modules: int
    test_ms: float = 0.0  # CPU milliseconds each test spends (0: the tests only import and compute)


def build_project(root: Path, workload: Workload) -> None:
    """A committed git repository: packages ``app/pkg_*/sub_*`` and ``tests/test_*.py``.

    Every tenth source file is a text file; the tests import modules from
    across the packages, so the scored code really is the worktree's.
    """
    root.mkdir(parents=True)
    files: dict[str, str] = {
        "pyproject.toml": '[project]\nname = "bench-app"\nversion = "0"\n\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
        "README.md": "# bench-app\n\nA synthetic project for benchmarks/overhead.py.\n",
        "app/__init__.py": "",
    }
    modules: list[str] = []
    remaining = workload.files - len(files) - workload.test_modules
    index = 0
    while remaining > 0:
        package, sub = f"pkg_{index // 300:02d}", f"sub_{index // 30 % 10:02d}"
        directory = f"app/{package}/{sub}"
        for init in (f"app/{package}/__init__.py", f"{directory}/__init__.py"):
            if init not in files:
                files[init] = ""
                remaining -= 1
        if index % 10 == 9:
            files[f"{directory}/data_{index:05d}.txt"] = f"record {index}\n" * 8
        else:
            files[f"{directory}/mod_{index:05d}.py"] = _module_source(index)
            modules.append(f"app.{package}.{sub}.mod_{index:05d}")
        remaining -= 1
        index += 1
    per_module = -(-workload.tests // workload.test_modules)
    for number in range(workload.test_modules):
        first = number * per_module
        count = max(0, min(per_module, workload.tests - first))
        files[f"tests/test_part_{number:02d}.py"] = _test_source(modules, first, count, workload.test_ms)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    # No automatic gc after the commit: at 20,000 files it runs in the background and the gc below fails.
    commit = ["-c", "gc.auto=0", "commit", "-q", "-m", "base"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], commit, ["gc", "-q"]):
        _git(root, *args)


def _module_source(index: int) -> str:
    return (
        f'"""Synthetic module {index}."""\n\n'
        f"FACTOR = {index % 97 + 1}\n\n\n"
        "def compute(x: int) -> int:\n"
        "    return x * FACTOR + 1\n\n\n"
        f"class Thing{index}:\n"
        "    def __init__(self, size: int) -> None:\n"
        "        self.items = [compute(i) for i in range(size)]\n\n"
        "    def total(self) -> int:\n"
        "        return sum(self.items)\n"
    )


def _test_source(modules: Sequence[str], first: int, count: int, test_ms: float) -> str:
    lines = ["import importlib", "import time", "", ""]
    if test_ms:  # CPU time, not sleep: a slower suite costs the machine as a real one would
        lines += [
            "def _work():",
            f"    end = time.process_time() + {test_ms / 1000!r}",
            "    while time.process_time() < end:",
            "        pass",
            "",
            "",
        ]
    for number in range(first, first + count):
        module = modules[number * 7 % len(modules)]
        lines += [
            f"def test_{number:04d}():",
            f'    module = importlib.import_module("{module}")',
            *(["    _work()"] if test_ms else []),
            "    assert module.compute(2) == 2 * module.FACTOR + 1",
            "",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


# -- measurements -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """What a method measures itself: the wall time of its batch, and named parts of it (seconds)."""

    seconds: float
    breakdown: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One timed batch of trials by one method."""

    method: str  # a key of _METHODS
    trials: int
    seconds: float  # wall time of the batch
    cpu_seconds: float  # user + system time of every process the batch started
    foreign_cpu_seconds: float | None  # what the rest of the machine used meanwhile (Linux only)
    breakdown: Mapping[str, float]

    @property
    def shared_machine(self) -> bool:
        """Whether other work took more than 5% of the machine's CPU meanwhile: the wall time is noisy."""
        capacity = self.seconds * (os.cpu_count() or 1)
        return self.foreign_cpu_seconds is not None and self.foreign_cpu_seconds > 0.05 * capacity


#: Agents of the main scenario: each writes a file with its trial's name, so every trial leaves its own tree.
DIFFERENT_TREES = 'echo "$EXPLORE_TRIAL" > trial_note.txt'
#: Agents of the second scenario: all write the same file, so every trial leaves the same tree.
SAME_TREES = "echo same > trial_note.txt"


def measure_plugin(
    project: Path,
    name: str,
    trials: int,
    concurrency: int,
    expected_tests: int,
    *,
    agent: str = DIFFERENT_TREES,
    sandbox: str = "auto",
    baseline_cached: bool = False,
) -> Timing:
    """Run the experiment ``name`` with ``trials`` variants whose agent is ``agent``; check that every trial passed.

    ``baseline_cached``: the base commit was scored by an earlier experiment (see :func:`score_the_base_first`).
    """
    variants = project.parent / "variants.json"
    variants.write_text(
        json.dumps(
            {
                "task": "Benchmark: write one file.",
                "max_concurrent": concurrency,
                "sandbox": sandbox,
                "agent": {"backend": "command", "run": agent},
                "score": {"command": SCORE_COMMAND},
                "variants": {f"v{i:03d}": f"variant {i}" for i in range(trials)},
            }
        )
    )
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "--explore",
        name,
        "--variants",
        str(variants),
        "-n",
        str(concurrency),
        "-p",
        "no:cacheprovider",
    ]
    started_at = time.time()
    started = time.perf_counter()
    finished = subprocess.run(argv, cwd=project, env=_environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    ended_at = time.time()
    results_dir = project / ".data" / "parallel_explorer" / name / "results"
    records = _check_plugin_run(finished, results_dir, trials, expected_tests)
    return Timing(seconds, _plugin_breakdown(records, results_dir, started_at, ended_at, baseline_cached))


def score_the_base_first(project: Path, name: str, concurrency: int, expected_tests: int) -> None:
    """An earlier experiment of one trial, so the next one finds the base commit in the score cache."""
    measure_plugin(project, f"{name}-earlier", 1, concurrency, expected_tests, agent=SAME_TREES)


def _check_plugin_run(
    finished: subprocess.CompletedProcess[str], results_dir: Path, trials: int, expected_tests: int
) -> list[dict[str, Any]]:
    """The trial records of a run that did all its work, or SystemExit saying what went wrong."""
    if finished.returncode != 0:
        _fail(f"the plugin run exited {finished.returncode}", finished.stdout + finished.stderr)
    try:
        records: list[dict[str, Any]] = json.loads((results_dir / "results.json").read_text())["trials"]
    except (OSError, ValueError, KeyError) as exc:
        _fail(f"the plugin run left no readable results.json ({exc})", finished.stdout)
    wrong = [
        f"{r['name']}: {r['status']}, {r['tests']['passed']} passed, {r['tests']['failed']} failed"
        for r in records
        if r["status"] != "done" or r["tests"]["passed"] != expected_tests or r["tests"]["total"] != expected_tests
    ]
    if len(records) != trials or wrong:
        _fail(f"results.json has {len(records)} trials (expected {trials}); not all passed: {wrong[:3]}", "")
    return records


def _plugin_breakdown(
    records: Sequence[dict[str, Any]], results_dir: Path, started_at: float, ended_at: float, baseline_cached: bool
) -> dict[str, float]:
    first_start = min(r["started_at"] for r in records)
    last_end = max(r["finished_at"] for r in records)
    baseline = json.loads((results_dir / "baseline.json").read_text())

    def mean_step(step: str) -> float:
        return statistics.mean(float(r["steps"][step]["seconds"]) for r in records)

    cached = sum(bool(r.get("score_cached")) for r in records)
    live = [r for r in records if not r.get("score_cached")]
    sealed = statistics.mean(r["steps"]["score"]["seconds"] - r["tests"]["seconds"] for r in live) if live else 0.0

    return {
        "before the first trial": first_start - started_at,
        "  baseline suite runs (in the background)": 0.0
        if baseline_cached
        else baseline["tests"]["seconds"] * baseline["runs"],
        "trials (first start to last end)": last_end - first_start,
        "after the last trial": ended_at - last_end,
        "per trial: worktree step (and its turn)": mean_step("worktree"),
        "per trial: agent step": mean_step("agent"),
        "per trial: score step": mean_step("score"),
        "  of which the suite process": statistics.mean(r["tests"]["seconds"] for r in live) if live else 0.0,
        "  of which the sealed checkout and the rest": sealed,
        "suite runs saved by the score cache": float(cached),
        "per trial: outside the steps": statistics.mean(
            r["finished_at"] - r["started_at"] - sum(s["seconds"] for s in r["steps"].values()) for r in records
        ),
    }


def measure_by_hand(project: Path, name: str, trials: int, concurrency: int, expected_tests: int) -> Timing:
    """``git worktree add``, the agent's file, then the suite, per trial, ``concurrency`` trials at a time."""
    worktrees = project.parent / "by_hand_worktrees"
    env = _environment()
    # Concurrent `git worktree add`s race on .git/worktrees ("failed to read .git/worktrees/t002/commondir"),
    # so they take turns, as they do in the plugin.
    adding = threading.Lock()

    def one_trial(index: int) -> tuple[float, float]:
        worktree = worktrees / f"t{index:03d}"
        started = time.perf_counter()
        with adding:
            _git(project, "worktree", "add", "-q", "-b", f"by-hand/{name}/t{index:03d}", str(worktree), "HEAD")
        (worktree / "trial_note.txt").write_text(f"t{index:03d}\n")
        added = time.perf_counter()
        suite = subprocess.run(
            [sys.executable, *SUITE_ARGS],
            cwd=worktree,
            env={**env, "PYTHONPATH": str(worktree), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
        )
        done = time.perf_counter()
        passed = _PASSED.search(suite.stdout)
        if suite.returncode != 0 or passed is None or int(passed.group(1)) != expected_tests:
            _fail(f"by hand: the suite in {worktree} exited {suite.returncode}", suite.stdout + suite.stderr)
        return added - started, done - added

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        timings = list(pool.map(one_trial, range(trials)))
    seconds = time.perf_counter() - started
    breakdown = {
        "per trial: git worktree add (and its turn)": statistics.mean(t[0] for t in timings),
        "per trial: suite process": statistics.mean(t[1] for t in timings),
    }
    return Timing(seconds, breakdown)


def measure_xdist_alone(project: Path, name: str, trials: int, concurrency: int, expected_tests: int) -> Timing:
    """``pytest -n C`` over ``trials`` empty tests: what xdist costs before any plugin does anything."""
    floor = project.parent / "xdist_alone"
    floor.mkdir()
    (floor / "test_empty.py").write_text("".join(f"def test_{i}():\n    pass\n" for i in range(trials)))
    argv = [sys.executable, "-m", "pytest", "-q", "-n", str(concurrency), "-p", "no:cacheprovider", "test_empty.py"]
    started = time.perf_counter()
    finished = subprocess.run(argv, cwd=floor, env=_environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    passed = _PASSED.search(finished.stdout)
    if finished.returncode != 0 or passed is None or int(passed.group(1)) != trials:
        _fail(f"xdist alone: pytest exited {finished.returncode}", finished.stdout + finished.stderr)
    return Timing(seconds, {})


_METHODS: dict[str, Any] = {
    "plugin": measure_plugin,
    "by hand": measure_by_hand,
    # The same plugin run with every agent leaving the same tree: the score cache scores it once.
    "plugin, same trees": functools.partial(measure_plugin, agent=SAME_TREES),
    # What the sandbox costs: agents and scoring runs without bubblewrap.
    "plugin, no sandbox": functools.partial(measure_plugin, sandbox="none"),
    # An experiment after the first on the same base commit: the baseline comes from the score cache.
    "plugin, baseline cached": functools.partial(measure_plugin, baseline_cached=True),
    # The floor: xdist's own start-up and shutdown, which the plugin cannot go below.
    "xdist alone": measure_xdist_alone,
}


#: What a scenario needs done, untimed, before it is measured.
_PREPARE: dict[str, Any] = {"plugin, baseline cached": score_the_base_first}


def _cpu_now() -> tuple[float, float | None]:
    """CPU seconds used so far by this process and its finished children, and by the whole machine (or None).

    The machine's figure (``/proc/stat``: every busy state, steal included)
    minus ours is what other work took from the measurement.
    """
    times = os.times()
    ours = times.user + times.system + times.children_user + times.children_system
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return ours, None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return ours, (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_PYTEST_VARIABLES}
    # The plugin writes its sealed scoring checkouts under $TMPDIR: on the same filesystem as the
    # worktrees (--tmpdir), or the comparison would weigh a disk against a tmpfs.
    return {**env, **_GIT_IDENTITY, "TMPDIR": tempfile.gettempdir()}


def _git(cwd: Path, *args: str) -> None:
    finished = subprocess.run(["git", *args], cwd=cwd, env=_environment(), capture_output=True, text=True)
    if finished.returncode != 0:
        _fail(f"git {' '.join(args)} failed in {cwd}", finished.stderr)


def _fail(problem: str, output: str) -> NoReturn:
    tail = "\n".join(output.splitlines()[-40:])
    raise SystemExit(f"overhead.py: {problem}\n{tail}".rstrip())


# -- the run ------------------------------------------------------------------


def run_once(
    template: Path, scratch: Path, method: str, label: str, trials: int, args: argparse.Namespace
) -> Measurement:
    """One measurement in a fresh copy of the committed project, removed afterwards unless --keep."""
    run_dir = scratch / label
    project = run_dir / "project"
    shutil.copytree(template, project, symlinks=True)
    try:
        if method in _PREPARE:  # before the clocks start
            _PREPARE[method](project, label, args.concurrency, args.tests)
        ours_before, machine_before = _cpu_now()
        timing = _METHODS[method](project, label, trials, args.concurrency, args.tests)
        ours_after, machine_after = _cpu_now()
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    foreign = None
    if machine_before is not None and machine_after is not None:
        foreign = max(0.0, machine_after - machine_before - (ours_after - ours_before))
    return Measurement(method, trials, timing.seconds, ours_after - ours_before, foreign, timing.breakdown)


def median_run(runs: Sequence[Measurement]) -> Measurement:
    return sorted(runs, key=lambda m: m.seconds)[(len(runs) - 1) // 2]


def print_table(counts: Sequence[int], concurrency: int, results: Mapping[tuple[str, int], list[Measurement]]) -> None:
    repeat = len(results["plugin", counts[0]])
    print(f"\nmedians of {repeat} runs: wall seconds (min-max), and CPU seconds of every process each method started")
    print(
        f"{'N':>4}  {'conc':>4}  {'plugin s':>19}  {'by hand s':>19}  {'plugin/by hand':>14}"
        f"  {'plugin CPU s':>12}  {'by hand CPU s':>13}  {'CPU ratio':>9}"
    )
    for n in counts:
        plugin, by_hand = results["plugin", n], results["by hand", n]
        wall = [statistics.median(m.seconds for m in runs) for runs in (plugin, by_hand)]
        cpu = [statistics.median(m.cpu_seconds for m in runs) for runs in (plugin, by_hand)]
        spread = [
            f"{w:6.2f} ({min(m.seconds for m in runs):5.2f}-{max(m.seconds for m in runs):5.2f})"
            for w, runs in zip(wall, (plugin, by_hand), strict=True)
        ]
        print(
            f"{n:>4}  {concurrency:>4}  {spread[0]:>19}  {spread[1]:>19}  {wall[0] / wall[1]:>14.2f}"
            f"  {cpu[0]:>12.2f}  {cpu[1]:>13.2f}  {cpu[0] / cpu[1]:>9.2f}"
        )
    if len(counts) > 1:
        low, high = min(counts), max(counts)
        cpu_of = {
            (m, n): statistics.median(r.cpu_seconds for r in results[m, n])
            for m in ("plugin", "by hand")
            for n in (low, high)
        }
        slopes = [(cpu_of[m, high] - cpu_of[m, low]) / (high - low) for m in ("plugin", "by hand")]
        print(
            f"per-trial CPU above the hand-run, from the slope between N={low} and N={high} (fixed costs cancel): "
            f"{slopes[0]:.3f} - {slopes[1]:.3f} = {slopes[0] - slopes[1]:.3f} s"
        )
    extra = [m for m in _METHODS if m not in ("plugin", "by hand") and (m, counts[0]) in results]
    if extra:
        print("\nthe other scenarios: median wall seconds (min-max), and their ratio")
        for n in counts:
            hand_s = statistics.median(m.seconds for m in results["by hand", n])
            plugin_s = statistics.median(m.seconds for m in results["plugin", n])
            for method in extra:
                runs = results[method, n]
                seconds = statistics.median(m.seconds for m in runs)
                shown = f"{seconds:6.2f} ({min(m.seconds for m in runs):5.2f}-{max(m.seconds for m in runs):5.2f})"
                line = f"N={n:<4} {method:<20} {shown}  /by hand {seconds / hand_s:5.2f}"
                if method == "plugin, same trees":
                    saved = statistics.median(m.breakdown["suite runs saved by the score cache"] for m in runs)
                    print(f"{line}  suite runs saved {saved:.0f}")
                elif method == "plugin, baseline cached":
                    print(f"{line}  the baseline's share: {plugin_s - seconds:+.2f} s")
                elif method == "xdist alone":
                    print(f"{line}  by hand with xdist's start-up added: {(hand_s + seconds) / hand_s:.2f}")
                else:
                    print(f"{line}  sandbox cost {plugin_s - seconds:+.2f} s ({plugin_s / seconds - 1:+.0%})")
    measurements = [m for runs in results.values() for m in runs]
    shared = [m for m in measurements if m.shared_machine]
    if shared:
        print(
            f"warning: during {len(shared)} of {len(measurements)} measurements other work used more than 5% of the "
            "machine's CPU: wall times are noisy; the CPU columns are not, or rerun on a quiet machine"
        )


def print_breakdown(
    counts: Sequence[int], methods: Sequence[str], results: Mapping[tuple[str, int], list[Measurement]]
) -> None:
    print("\nwhere the time goes (median run of each; seconds, per-trial figures are means)")
    for n in counts:
        print(f"N={n}")
        for method in methods:
            run = median_run(results[method, n])
            print(f"  {method}: {run.seconds:.2f} s wall, {run.cpu_seconds:.2f} s CPU")
            for label, seconds in run.breakdown.items():
                print(f"    {label:<42}{seconds:8.3f}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("counts", nargs="*", type=int, default=[2, 8, 32], metavar="N", help="trial counts")
    parser.add_argument("-c", "--concurrency", type=int, default=3, help="trials at once, both ways (default 3)")
    parser.add_argument("-r", "--repeat", type=int, default=3, help="measurements per N and method (default 3)")
    parser.add_argument("--files", type=int, default=3000, help="files in the synthetic project (default 3000)")
    parser.add_argument("--tests", type=int, default=300, help="tests in its suite (default 300)")
    parser.add_argument("--test-modules", type=int, default=15, help="test modules (default 15)")
    parser.add_argument(
        "--test-ms",
        type=float,
        default=0.0,
        help="CPU milliseconds each test spends (default 0: a suite of ~0.5 s; real suites take longer, "
        "which is where scoring a tree once pays)",
    )
    parser.add_argument(
        "--tmpdir",
        type=Path,
        default=None,
        help="where to build the project and worktrees (default: $TMPDIR or /tmp); a tmpfs such as /dev/shm "
        "takes the disk out of the figures",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(_METHODS),
        default=list(_METHODS),
        metavar="METHOD",
        help=f"what to measure (default all: {', '.join(repr(m) for m in _METHODS)}); 'plugin' and 'by hand' always",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print where it is")
    args = parser.parse_args(argv)
    if not {"plugin", "by hand"} <= set(args.methods):
        parser.error("--methods: 'plugin' and 'by hand' are always measured")
    if not args.counts or min(args.counts) < 1 or args.concurrency < 1 or args.repeat < 1:
        parser.error("trial counts, --concurrency and --repeat must be whole numbers >= 1")
    if args.tests < args.test_modules or args.files < args.tests // 5 + args.test_modules + 50:
        parser.error("--tests must be at least --test-modules, and --files large enough to hold the packages")
    return args


def _slug(method: str) -> str:
    """A method's name as it may appear in an experiment name: ``plugin, same trees`` -> ``plugin-same-trees``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", method)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("pytest_parallel_explore") is None:
        raise SystemExit(f"overhead.py: pytest-parallel-explore is not installed for {sys.executable}")
    workload = Workload(args.files, args.tests, args.test_modules, args.test_ms)
    scratch = Path(tempfile.mkdtemp(prefix="explore-overhead-", dir=args.tmpdir))
    tempfile.tempdir = str(scratch)  # the plugin's scoring checkouts go there too (see _environment)
    try:
        template = scratch / "template"
        build_project(template, workload)
        print(
            f"pytest-parallel-explore {importlib.metadata.version('pytest-parallel-explore')}, "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; project: {workload.files} files, "
            f"{workload.tests} tests in {workload.test_modules} modules, {workload.test_ms:g} ms CPU each; "
            f"concurrency {args.concurrency}; in {scratch}"
        )
        methods = [m for m in _METHODS if m in args.methods]
        for method in methods:  # untimed: the first run of each pays for cold caches
            run_once(template, scratch, method, f"warmup-{_slug(method)}", 1, args)
        results: dict[tuple[str, int], list[Measurement]] = {(m, n): [] for m in methods for n in args.counts}
        for repeat in range(args.repeat):
            for position, n in enumerate(args.counts):
                order = methods if (repeat + position) % 2 == 0 else list(reversed(methods))
                for method in order:
                    label = f"bench-{n}-{repeat}-{_slug(method)}"
                    measurement = run_once(template, scratch, method, label, n, args)
                    results[method, n].append(measurement)
                    foreign = measurement.foreign_cpu_seconds
                    print(
                        f"  {label}: {measurement.seconds:.2f} s wall, {measurement.cpu_seconds:.2f} s CPU"
                        + (f", other processes {foreign:.2f} s CPU" if foreign is not None else ""),
                        flush=True,
                    )
        print_table(args.counts, args.concurrency, results)
        print_breakdown(args.counts, methods, results)
    finally:
        if args.keep:
            print(f"\nkept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
