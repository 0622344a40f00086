"""The base commit, scored as it is: the reference every trial's tests are judged against.

The suite runs ``score.baseline_runs`` times on the base commit; a test whose
outcome differs between those runs is *flaky* and is left out of the
verdicts and the pass rate.  Each trial's tests then get a verdict, the way
SWE-bench judges a patch: ``fixed`` (failing at base, passing now), ``kept``
(passing at both), ``broken`` (passing at base, not now), ``still_failing``,
``added`` (a test the base did not have) and ``removed``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ..model.baseline import BASELINE, JUDGED_AT_BASE, VERDICTS, Baseline
from ..model.jsonfile import read_json, write_json
from ..model.paths import ExperimentPaths
from ..model.record import TestStats
from ..model.settings import ScoringSpec, ScoringSubject
from ..model.spec import SCHEDULING_KEYS
from ..repo import gitops
from ..repo.store import KeptFiles
from . import scorecache
from .checkout import scoring_checkout
from .pinning import Pinned, base_config
from .suite import run_test_suite, suite_slot


def baseline_key(spec: ScoringSpec, holdout: KeptFiles | None) -> str:
    """What the baseline depends on: the base commit, the hold-out tests and everything about how it is scored."""
    payload = {
        "base_commit": spec.base_commit,
        "holdout": holdout.digest() if holdout is not None and spec.score.holdout else None,
        # Resolved: the command and timeout that run, wherever they were set.
        "score": {k: v for k, v in dataclasses.asdict(spec.score).items() if k not in SCHEDULING_KEYS},
        "worktree": dataclasses.asdict(spec.worktree),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_baseline(spec: ScoringSpec, holdout: KeptFiles | None) -> Baseline | None:
    """The saved baseline if it is still valid for these settings and this hold-out.

    Once this process has read or written the baseline of these settings, that
    one is kept in memory: every trial asks, and without a sandbox an agent
    can rewrite the file (a process that reads it first after that still
    trusts it: see the README, "Without a sandbox").
    """
    path, key = spec.paths.baseline_json, baseline_key(spec, holdout)
    known = _known.get((path, key))
    if known is not None:
        return known
    data = read_json(path)
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    try:
        baseline = Baseline.from_json(data)
    except (KeyError, TypeError):
        return None
    _remember(path, baseline)
    return baseline


#: Per process: the baseline it read or wrote, by file and key.
_known: dict[tuple[Path, str], Baseline] = {}


def _remember(path: Path, baseline: Baseline) -> None:
    _known[(path, baseline.key)] = baseline


def ensure_baseline(spec: ScoringSpec, holdout: KeptFiles | None) -> tuple[Baseline, str]:
    """The baseline for these settings, and how it was had: ``reused`` (saved), ``cached`` or ``scored``.

    Only one process scores it: the others wait on ``results/baseline.lock``
    and then read what it saved.
    """
    saved = load_baseline(spec, holdout)
    if saved is not None:
        return saved, "reused"
    with _baseline_lock(spec.paths):
        return _ensure_locked(spec, holdout)


@contextlib.contextmanager
def _baseline_lock(paths: ExperimentPaths) -> Iterator[None]:
    lock = _open_lock(paths)
    try:
        yield
    finally:
        _close_lock(lock)


def _open_lock(paths: ExperimentPaths) -> IO[str]:
    """``results/baseline.lock``, held (``flock``: the kernel lets go of it if this process dies)."""
    paths.results.mkdir(parents=True, exist_ok=True)
    lock = (paths.results / "baseline.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _close_lock(lock: IO[str]) -> None:
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


class Cancelled(Exception):
    """The run stopped while the baseline was scored: what it measured is not kept."""


def _ensure_locked(
    spec: ScoringSpec, holdout: KeptFiles | None, cancelled: threading.Event | None = None
) -> tuple[Baseline, str]:
    saved = load_baseline(spec, holdout)
    if saved is not None:
        return saved, "reused"
    base = spec.base_commit
    git = gitops.sealed(spec.workspace.repo_root)
    # Every run is kept in the cache entry, so the flaky set is always worked out from real runs.
    # At the base nothing is the agent's: its plugins autoload, and the trials' runs load them by name.
    pinned = Pinned(base_config(git, base))
    runs_wanted = spec.score.baseline_runs
    with scorecache.claim(spec, git, base, holdout, runs=runs_wanted, pinned=pinned) as slot:
        if slot is not None and slot.runs is not None:
            runs, how = slot.runs, "cached"
        else:

            def run(name: str) -> TestStats:  # in a checkout of its own, with a slot among the trials' suites
                with scoring_checkout(spec, _subject(spec, BASELINE), git, base, holdout) as scoring, suite_slot(spec):
                    checkout, out, sandbox = scoring.checkout, scoring.out, scoring.sandbox
                    return run_test_suite(spec, _subject(spec, name), checkout, out=out, pinned=pinned, sandbox=sandbox)

            # At once, as the slots allow: every trial's score waits for the baseline.
            names = [f"{BASELINE}.{i}" for i in range(1, runs_wanted + 1)]
            with concurrent.futures.ThreadPoolExecutor(len(names), thread_name_prefix="explore-baseline") as pool:
                runs = list(pool.map(run, names))
            how = "scored"
            if cancelled is not None and cancelled.is_set():
                raise Cancelled("the run was interrupted")
            if slot is not None:
                slot.store(runs, f"{spec.experiment}/{BASELINE}")
    baseline = _from_runs(baseline_key(spec, holdout), base, runs, spec.score.holdout)
    write_json(spec.paths.baseline_json, baseline.to_json())
    _remember(spec.paths.baseline_json, baseline)
    return baseline, how


def _subject(spec: ScoringSpec, name: str) -> ScoringSubject:
    """The baseline (or one of its runs) as its commands see it: a name, the experiment's limits."""
    return ScoringSubject(name, {"EXPLORE_TRIAL": name}, spec.limits)


class BackgroundBaseline:
    """The baseline scored in a thread of the controller while the agents work.

    The lock is taken before the thread starts (so before any worker
    exists): a trial that finishes scoring first waits in
    :func:`ensure_baseline` until this thread has saved the baseline.  The
    thread starts scoring once ``ready`` is set (the xdist workers are up), or
    after :data:`START_WAIT_SECONDS`: at the run's start the CPU goes to the
    workers, and a suite's timeout counts from its slot, so a suite must
    not hold one while starved of CPU.
    """

    def __init__(self, spec: ScoringSpec, holdout: KeptFiles | None, ready: threading.Event | None = None) -> None:
        self.spec = spec
        self.holdout = holdout
        self.ready = ready
        self.result: tuple[Baseline, str] | None = None
        self.error: BaseException | None = None
        self.cancelled = threading.Event()
        self._lock = _open_lock(spec.paths)
        self._thread = threading.Thread(target=self._run, name="explore-baseline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self.ready is not None:
                self.ready.wait(START_WAIT_SECONDS)
            self.result = _ensure_locked(self.spec, self.holdout, self.cancelled)
        except BaseException as exc:  # reported by wait(); a trial then scores the baseline itself
            self.error = exc
        finally:
            _close_lock(self._lock)

    def wait(self, timeout: float | None = None) -> tuple[Baseline, str] | None:
        """The baseline and how it was had, once the thread is done; None if it failed or is still running."""
        self._thread.join(timeout)
        return self.result

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


#: Seconds the background baseline waits for the run's workers to be up, at most.
START_WAIT_SECONDS = 30.0


def _from_runs(key: str, base_commit: str, runs: list[TestStats], holdout: Sequence[str]) -> Baseline:
    outcomes: dict[str, set[str]] = {}
    for run in runs:
        for node_id, case in run.cases.items():
            outcomes.setdefault(node_id, set()).add(case["outcome"])
    # A test missing from some run (collection varied) disagrees with itself too.
    flaky = {n for n, seen in outcomes.items() if len(seen) > 1 or any(n not in r.cases for r in runs)}
    first = runs[0]
    cases = {n: first.cases[n]["outcome"] for n in first.cases if n not in flaky}
    return Baseline(
        key=key,
        base_commit=base_commit,
        runs=len(runs),
        cases=cases,
        flaky=frozenset(flaky),
        tests=first,
        judged=frozenset(n for n, outcome in cases.items() if outcome in JUDGED_AT_BASE or _in(n, holdout)),
        plugins=tuple(first.plugins),
    )


def _in(node_id: str, folders: Sequence[str]) -> bool:
    path = node_id.split("::", 1)[0]
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def verdicts(baseline: Baseline, cases: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Each test's verdict for a trial whose outcomes are ``cases``; flaky tests get none.

    A judged test passes only if this run reports it passed: skipped,
    xfailed, xpassed or errored is ``broken`` or ``still_failing``, missing is ``removed``.
    """
    result: dict[str, str] = {}
    for node_id in cases:
        if node_id not in baseline.cases and node_id not in baseline.flaky:
            result[node_id] = "added"
    for node_id in baseline.judged:
        now = cases.get(node_id, {}).get("outcome")
        if now is None:
            result[node_id] = "removed"
        elif baseline.cases[node_id] == "passed":
            result[node_id] = "kept" if now == "passed" else "broken"
        else:
            result[node_id] = "fixed" if now == "passed" else "still_failing"
    return result


def judge(baseline: Baseline | None, tests: TestStats) -> tuple[dict[str, int], list[str]]:
    """The verdict counts of a trial's tests against ``baseline``, and its broken tests.

    Each test's verdict is kept in ``tests.verdicts`` (the report reads it there); tests that were
    flaky at the base commit are marked and left out of the verdicts and the pass rate.
    """
    if baseline is None:
        return {}, []
    tests.flaky = sorted(baseline.flaky & tests.cases.keys())
    per_test = tests.verdicts = verdicts(baseline, tests.cases)
    if baseline.cases:  # with no tests at the base, the agent's own tests are all there is to judge
        tests.added = sorted(n for n, v in per_test.items() if v == "added")
    return verdict_counts(per_test), sorted(n for n, v in per_test.items() if v == "broken")


def verdict_counts(per_test: Mapping[str, str]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    for verdict in per_test.values():
        counts[verdict] += 1
    return counts
