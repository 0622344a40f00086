"""How long a user waits for N trials whose agents take time, against what no scheduler can beat.

Real agents wait minutes on a model's API and use little CPU; real test suites
take all the CPU they get.  This script simulates both on this machine:

agents
    a command agent that sleeps a seeded, jittered time (``--agent-seconds``,
    default 20-60 s) and writes one file, ``burn_seconds.txt``, naming how much
    CPU its suite will burn (``--suite-seconds``, default 5-15 s);
suites
    the synthetic project of ``overhead.py`` (3,000 files or ``--files``, 30 tests) plus
    ``tests/test_burn.py``, which burns the CPU seconds the file names (the
    base, without the file, burns ``--base-burn``).

It runs the N trials twice, the same draws both times:

plugin
    ``pytest --explore … -n A`` with ``max_concurrent: A`` (agents at once) and
    ``score.max_concurrent`` left to its default (the CPUs the run may use);
by hand
    a pool of A threads, each running, per trial, ``git worktree add``, the
    agent's sleep and file, then the suite, with a semaphore of C (the CPUs)
    around the suites: the same limits, nothing else.

and prints both makespans against the lower bound

    max(total agent time / A, total suite CPU / C, the longest single trial)

where a trial's suite CPU is its burn plus what an empty run of the suite
costs (measured first, alone), and against a tighter bound that no
scheduler beats either: no suite starts before its agent ends, so the cores
idle at least until the shortest agent ends (see :func:`release_bound`).  The plugin's run must judge every trial (no
suite timed out, every test passed) or the script stops.  It also prints the
seconds from the command to the first agent's start, and each suite's wait
for its slot (the most, the mean).

Usage::

    python benchmarks/makespan.py                   # N = 24, A = 24: about 5 minutes
    python benchmarks/makespan.py --quick           # N = 8, times / 10: about 40 s
    python benchmarks/makespan.py --trials 8 --agents 8 --agent-seconds 0 0 \\
        --suite-seconds 3 3 --score-timeout 8s --plugin-only   # the issue's contention case
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from overhead import Workload, _cpu_now, _environment, _fail, _git, build_project

BURN_TEST = """\
import pathlib
import time


def test_burn():
    note = pathlib.Path("burn_seconds.txt")
    seconds = float(note.read_text().split()[0]) if note.exists() else {base}
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
"""
SUITE = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")


@dataclasses.dataclass(frozen=True)
class Draw:
    """One trial's simulated work: how long its agent waits, how much CPU its suite burns."""

    name: str
    agent: float
    burn: float


def draws(args: argparse.Namespace) -> list[Draw]:
    rng = random.Random(args.seed)
    return [
        Draw(f"t{i:03d}", round(rng.uniform(*args.agent_seconds), 2), round(rng.uniform(*args.suite_seconds), 2))
        for i in range(args.trials)
    ]


def agent_command(draw: Draw) -> str:
    # The trial's name in the file too: no two trees alike, nothing from the score cache.
    return f"sleep {draw.agent}; echo {draw.burn} {draw.name} > burn_seconds.txt"


def build(root: Path, base_burn: float, files: int) -> None:
    build_project(root, Workload(files=files, tests=30, test_modules=3))
    (root / "tests" / "test_burn.py").write_text(BURN_TEST.format(base=base_burn))
    for step in (["add", "-A"], ["commit", "-q", "-m", "burn"]):
        _git(root, *step)


def suite_env(worktree: Path) -> dict[str, str]:
    return {**_environment(), "PYTHONPATH": str(worktree), "PYTHONDONTWRITEBYTECODE": "1"}


def empty_suite_seconds(project: Path) -> float:
    """What one suite run costs besides its burn: start-up and the 30 tests, run alone (median of 3)."""
    (project / "burn_seconds.txt").write_text("0\n")
    try:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, *SUITE], cwd=project, env=suite_env(project), capture_output=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        (project / "burn_seconds.txt").unlink()


@dataclasses.dataclass(frozen=True)
class PluginRun:
    seconds: float
    first_trial: float  # seconds from the command to the first trial's start (xdist's workers are up)
    first_agent: float  # seconds from the command to the first agent step's start
    waits: list[float]  # each suite's wait for its slot
    records: list[dict[str, Any]]


def run_plugin(project: Path, work: Sequence[Draw], args: argparse.Namespace) -> PluginRun:
    score: dict[str, Any] = {"command": "{python} " + " ".join(SUITE), "cache": False}
    if args.score_timeout:
        score["timeout"] = args.score_timeout
    if args.score_slots:
        score["max_concurrent"] = args.score_slots
    spec = {
        "task": "Benchmark: wait, then leave a file.",
        "max_concurrent": args.agents,
        "timeout": "1h",
        "agent": {"backend": "command"},
        "score": score,
        "variants": {d.name: {"description": d.name, "agent": {"run": agent_command(d)}} for d in work},
    }
    variants = project.parent / "variants.json"
    variants.write_text(json.dumps(spec))
    argv = [sys.executable, "-m", "pytest", "--explore", "mk", "--variants", str(variants)]
    argv += ["-n", str(args.agents), "-p", "no:cacheprovider"]
    started_at, started = time.time(), time.perf_counter()
    finished = subprocess.run(argv, cwd=project, env=_environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    results = project / ".data" / "parallel_explorer" / "mk" / "results" / "results.json"
    try:
        records: list[dict[str, Any]] = json.loads(results.read_text())["trials"]
    except (OSError, ValueError, KeyError) as exc:
        _fail(f"the plugin run left no readable results.json ({exc})", finished.stdout + finished.stderr)
    wrong = [
        f"{r['name']}: {r['status']} {r['reason'] or ''}" for r in records if r["status"] != "done" or r["score"] != 1
    ]
    if finished.returncode != 0 or len(records) != len(work) or wrong:
        _fail(f"the plugin run exited {finished.returncode}; not judged: {wrong[:4]}", finished.stdout)
    first_trial = min(r["started_at"] for r in records) - started_at
    first_agent = min(r["steps"]["agent"]["started"] for r in records) - started_at
    waits = [float(r["steps"]["score"].get("suite_wait", 0.0)) for r in records]
    return PluginRun(seconds, first_trial, first_agent, waits, records)


def run_by_hand(project: Path, work: Sequence[Draw], args: argparse.Namespace, cpus: int) -> float:
    """A pool of ``--agents`` threads; the suites take turns on a semaphore of ``cpus``."""
    adding, suites = threading.Lock(), threading.Semaphore(cpus)
    worktrees = project.parent / "by_hand"

    def trial(draw: Draw) -> None:
        worktree = worktrees / draw.name
        with adding:  # concurrent adds race on .git/worktrees
            _git(project, "worktree", "add", "-q", "-b", f"by-hand/{draw.name}", str(worktree), "HEAD")
        subprocess.run(agent_command(draw), shell=True, cwd=worktree, check=True)
        with suites:
            suite = subprocess.run([sys.executable, *SUITE], cwd=worktree, env=suite_env(worktree), capture_output=True)
        if suite.returncode != 0:
            _fail(f"by hand: the suite of {draw.name} exited {suite.returncode}", suite.stdout.decode())

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.agents) as pool:
        list(pool.map(trial, work))
    return time.perf_counter() - started


_T = TypeVar("_T")


def timed(run: Callable[[], _T]) -> tuple[_T, str]:
    """``run()``, its CPU, and how much of the machine other processes took meanwhile (the bound assumes none)."""
    ours, machine = _cpu_now()
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    ours_after, machine_after = _cpu_now()
    used = f"CPU {ours_after - ours:.1f} s"
    if machine is None or machine_after is None:
        return result, f"{used}; other processes: unknown"
    foreign = max(0.0, machine_after - machine - (ours_after - ours))
    return result, f"{used}; other processes took {foreign / (seconds * len(os.sched_getaffinity(0))):.0%} of the CPUs"


def lower_bound(work: Sequence[Draw], agents: int, cpus: int, empty: float) -> tuple[float, str]:
    """The issue's bound, max(total agent time / A, total suite CPU / C, the longest trial), and which term it is."""
    bounds = {
        "agents": sum(d.agent for d in work) / agents,
        "suite CPU": sum(d.burn + empty for d in work) / cpus,
        "longest trial": max(d.agent + d.burn + empty for d in work),
    }
    which = max(bounds, key=lambda k: bounds[k])
    return bounds[which], which


def release_bound(work: Sequence[Draw], cpus: int, empty: float) -> tuple[float, float]:
    """A tighter bound that no scheduler beats either, and the time it starts from.

    A suite starts only once its agent has ended, so the k-th agent to end
    does so no earlier than the k-th shortest agent time, and at least the
    N-k+1 smallest suites are still to run then: the makespan is at least
    that time plus their CPU over C, for every k (k = 1: the shortest agent
    plus all the suite CPU over C).  The issue's bound leaves out that the
    cores idle until the first agent ends.
    """
    ends = sorted(d.agent for d in work)
    suites = sorted(d.burn + empty for d in work)
    n = len(work)
    bound, start = max((ends[k] + sum(suites[: n - k]) / cpus, ends[k]) for k in range(n))
    return bound, start


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=24, help="N (default 24)")
    parser.add_argument("--agents", type=int, default=None, help="agents at once, A (default N)")
    parser.add_argument("--agent-seconds", type=float, nargs=2, default=(20.0, 60.0), metavar=("MIN", "MAX"))
    parser.add_argument("--suite-seconds", type=float, nargs=2, default=(5.0, 15.0), metavar=("MIN", "MAX"))
    parser.add_argument("--base-burn", type=float, default=None, help="CPU seconds of the base's suite (mean)")
    parser.add_argument("--score-timeout", default=None, help="score.timeout (default the plugin's)")
    parser.add_argument("--score-slots", type=int, default=None, help="score.max_concurrent (default the CPUs)")
    parser.add_argument("--files", type=int, default=3000, help="files in the project (default 3,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="N = 8 and every time / 10")
    parser.add_argument("--plugin-only", action="store_true", help="skip the by-hand pool")
    parser.add_argument("--tmpdir", type=Path, default=None, help="where to build the project (e.g. /dev/shm)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials = 8
        args.agent_seconds = tuple(s / 10 for s in args.agent_seconds)
        args.suite_seconds = tuple(s / 10 for s in args.suite_seconds)
    args.agents = args.agents or args.trials
    if args.base_burn is None:
        args.base_burn = sum(args.suite_seconds) / 2
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    cpus = len(os.sched_getaffinity(0))
    work = draws(args)
    scratch = Path(tempfile.mkdtemp(prefix="explore-makespan-", dir=args.tmpdir))
    tempfile.tempdir = str(scratch)  # the plugin's scoring checkouts go there too
    try:
        template = scratch / "template"
        build(template, args.base_burn, args.files)
        empty = empty_suite_seconds(template)
        bound, which = lower_bound(work, args.agents, cpus, empty)
        print(
            f"N={args.trials} A={args.agents} C={cpus} agents {args.agent_seconds[0]:g}-{args.agent_seconds[1]:g} s, "
            f"suites {args.suite_seconds[0]:g}-{args.suite_seconds[1]:g} s CPU (+{empty:.2f} s per run), "
            f"seed {args.seed}; load {os.getloadavg()[0]:.1f}"
        )
        release, start = release_bound(work, cpus, empty)
        print(f"lower bound {bound:.1f} s ({which}); with the suites' release: {release:.1f} s (from {start:.1f} s)")
        project = scratch / "plugin" / "project"
        shutil.copytree(template, project, symlinks=True)
        plugin, foreign = timed(lambda: run_plugin(project, work, args))
        print(
            f"plugin   {plugin.seconds:7.1f} s  /bound {plugin.seconds / bound:.2f}  /release "
            f"{plugin.seconds / release:.2f}  first trial at "
            f"{plugin.first_trial:.2f} s, first agent at {plugin.first_agent:.2f} s  "
            f"suite waits: max {max(plugin.waits):.1f} s, "
            f"mean {statistics.mean(plugin.waits):.1f} s; every trial judged; {foreign}"
        )
        if not args.plugin_only:
            project = scratch / "hand" / "project"
            shutil.copytree(template, project, symlinks=True)
            hand, foreign = timed(lambda: run_by_hand(project, work, args, cpus))
            print(f"by hand  {hand:7.1f} s  /bound {hand / bound:.2f}  /release {hand / release:.2f}  {foreign}")
            print(f"plugin / by hand {plugin.seconds / hand:.2f}")
        print(f"load {os.getloadavg()[0]:.1f} at the end (other work on the machine moves every figure)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
