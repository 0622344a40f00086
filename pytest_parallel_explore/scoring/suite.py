"""The project's test suite and metric commands, run in a sealed scoring checkout.

The suite runs inside the checkout with the checkout first on ``PYTHONPATH``
(``src/`` too when the project has one), so the code scored is the trial's,
never the main checkout's or an installed copy.  A pytest command is pinned to
the base commit's configuration and plugins, and each test's outcome, kept by
node id, comes from the plugin's own reporter (see :mod:`.pinning`).  The
environment is an allow-list: nothing of the user's secrets, nothing like
``PYTEST_ADDOPTS`` that changes how pytest starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path

from ..isolation.environ import safe_env
from ..isolation.pool import Grant, SlotPool
from ..isolation.procs import Finished, expand, run_owned
from ..isolation.sandbox import Sandbox
from ..model.record import TestStats
from ..model.settings import ScoringSpec, ScoringSubject
from ..model.spec import ScoreSpec
from ..repo import trees
from . import pinning
from .pinning import Pinned

#: How much of the end of a metric command's output is read for its last number.
_METRIC_TAIL = 1 << 16
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PYTEST_COMMAND = re.compile(r"(^|[\s/;&|(])(py\.test|pytest)(\s|$)|-m\s+pytest\b")
#: The shell's exit codes for a command it could not run (not executable, not found): no verdict.
_NOT_RUN = (126, 127)


def command_values(spec: ScoringSpec, subject: ScoringSubject, worktree: Path) -> dict[str, str]:
    """Values for ``{python}``, ``{worktree}`` ... in score, setup and metric commands."""
    return {
        "python": sys.executable,
        "worktree": str(worktree),
        "trial": subject.name,
        "experiment": spec.experiment,
    }


def scoring_env(spec: ScoringSpec, subject: ScoringSubject, worktree: Path) -> dict[str, str]:
    """The environment of scoring and set-up commands: allowed variables only, the worktree's code first."""
    repo = str(spec.workspace.repo_root)
    inherited = [
        p
        for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if p and not (p == repo or p.startswith(repo + os.sep))
    ]
    first = [str(worktree / "src")] if (worktree / "src").is_dir() else []
    pythonpath = os.pathsep.join([*first, str(worktree), *inherited])
    passed = {name: os.environ[name] for name in spec.score.pass_env if name in os.environ}
    return safe_env(
        {
            **passed,
            "PYTHONPATH": pythonpath,
            "PYTHONDONTWRITEBYTECODE": "1",
            "EXPLORE_EXPERIMENT": spec.experiment,
            "EXPLORE_WORKTREE": str(worktree),
            **subject.env,
        }
    )


def suite_slot(
    spec: ScoringSpec, waiting: Callable[[float], None] | None = None
) -> contextlib.AbstractContextManager[Grant]:
    """One of the run's ``score.max_concurrent`` suite slots, held for the ``with`` block.

    Suites burn CPU: more at once than there are CPUs only makes each slower,
    until ``score.timeout`` (counted from the slot, not from the wait) stops
    them all.  ``waiting(since)`` is called if the slot is not free at once.
    """
    return SlotPool(spec.paths.suite_pool, spec.score.max_concurrent).slot(waiting)


def run_test_suite(
    spec: ScoringSpec,
    subject: ScoringSubject,
    worktree: Path,
    *,
    out: Path,
    pinned: Pinned,
    sandbox: Sandbox | None = None,
) -> TestStats:
    """Run ``score.command`` in the checkout ``worktree`` and read its outcome, test by test.

    A pytest command runs pinned to the base (see :mod:`.pinning`): its
    outcomes are the ones the reporter plugin streamed as the tests ended;
    the junit report, written to ``out`` (a folder outside the checkout's
    files) and copied to ``results/<trial>_junit.xml``, is checked against
    them.  Another command is judged by its ``score.junit`` file or its exit code.
    """
    trial, timeout = subject.name, spec.score.timeout
    paths = spec.paths
    log = paths.trial_file(trial, "_tests.log")
    log.unlink(missing_ok=True)
    paths.trial_file(trial, "_junit.xml").unlink(missing_ok=True)
    command = expand(spec.score.command, command_values(spec, subject, worktree))
    env = scoring_env(spec, subject, worktree)
    if _PYTEST_COMMAND.search(command):
        junit = out / "junit.xml"
        junit.unlink(missing_ok=True)
        with pinning.outcome_pipe() as (fd, reported):
            sealed = ["--junitxml", str(junit), "-o", "junit_family=xunit1", *pinning.arguments(pinned, worktree, out)]
            command += " " + shlex.join(sealed)
            finished = _run(command, worktree, log, pinning.environment(pinned, out, fd, env), timeout, sandbox, fd)
        stats = reported.stats()
        data = trees.read_inside(out, junit.name, REPORT_CAP)  # the suite's code could have made it a link
        written = parse_junit(data).cases if data is not None else None
        if data is not None:
            paths.trial_file(trial, "_junit.xml").write_bytes(data)
        stats.faults = pinning.disagreements(reported, written)
    else:
        finished = _run(command, worktree, log, env, timeout, sandbox)
        data = trees.read_inside(worktree, spec.score.junit, REPORT_CAP) if spec.score.junit else None
        if data is not None:
            stats = parse_junit(data)
            paths.trial_file(trial, "_junit.xml").write_bytes(data)
        elif not spec.score.junit and finished.returncode not in (None, *_NOT_RUN):
            # Not pytest and no junit file: the exit code is the only verdict.
            stats = TestStats(passed=int(finished.returncode == 0), failed=int(finished.returncode != 0))
        else:
            stats = TestStats()
    stats.exit_code = finished.returncode
    stats.seconds = round(finished.seconds, 3)
    stats.problem = _problem(finished.returncode, finished.timed_out, stats, timeout, log)
    if finished.limit is not None:  # stopped part-way: what ran is no verdict on the suite
        stats.problem = f"the test suite hit a resource limit: {finished.limit} (see {log})"
    return stats


def _run(
    command: str,
    worktree: Path,
    log: Path,
    env: Mapping[str, str],
    timeout: float,
    sandbox: Sandbox | None,
    *pass_fds: int,
) -> Finished:
    log.write_text(f"$ {command}\n")
    return run_owned(
        command,
        cwd=worktree,
        env=env,
        timeout=timeout,
        output=log,
        sandbox=sandbox,
        pass_fds=pass_fds,
    )


def _problem(returncode: int | None, timed_out: bool, stats: TestStats, timeout: float, log: Path) -> str | None:
    """Why this run cannot be judged, or None when it can."""
    if timed_out:
        return f"the test suite timed out after {timeout:g}s (see {log})"
    if returncode == 5 or (returncode == 0 and stats.total == 0):
        return "the test suite collected no tests"
    if stats.total == 0:
        return f"the test suite did not start (exit {returncode}; see {log})"
    return None


#: The largest report a suite may write (a junit file of 100,000 tests is about 20 MB).
REPORT_CAP = 64 << 20


def parse_junit(data: bytes) -> TestStats:
    """Counts and per-test outcomes from a junit XML report (pytest's xunit1 or xunit2)."""
    stats = TestStats()
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return stats
    for case in root.iter("testcase"):
        tags = {child.tag for child in case}
        if "failure" in tags:
            outcome = "failed"
            stats.failed += 1
        elif "error" in tags:
            outcome = "error"
            stats.errors += 1
        elif "skipped" in tags:
            outcome = "skipped"
            stats.skipped += 1
        else:
            outcome = "passed"
            stats.passed += 1
        stats.cases[_node_id(case.attrib)] = {"outcome": outcome, "duration": float(case.get("time") or 0)}
    return stats


def _node_id(attrib: Mapping[str, str]) -> str:
    """pytest's node id, rebuilt from a testcase's ``file``, ``classname`` and ``name``."""
    name = attrib.get("name", "")
    classname = attrib.get("classname", "")
    file = attrib.get("file")
    if not file:
        return f"{classname}::{name}" if classname else name
    module = file[: -len(".py")].replace("/", ".") if file.endswith(".py") else file
    if name == module and not classname:  # the module itself could not be collected
        return file
    classes = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
    parts = [file, *(classes.split(".") if classes else []), name]
    return "::".join(part for part in parts if part)


def run_metric(
    spec: ScoringSpec, subject: ScoringSubject, worktree: Path, command: str, sandbox: Sandbox | None = None
) -> float | str:
    """The last number a ``score.metrics`` command prints, or why there is none.

    Its output goes through a file, as a suite's does, so ``limits.output``
    bounds it: the command runs the agent's code, which could print gigabytes.
    """
    with tempfile.TemporaryDirectory(prefix="explore-metric-") as scratch:
        output = Path(scratch) / "output"
        finished = run_owned(
            expand(command, command_values(spec, subject, worktree)),
            cwd=worktree,
            env=scoring_env(spec, subject, worktree),
            timeout=spec.score.timeout,
            output=output,
            sandbox=sandbox,
        )
        with output.open("rb") as printed:
            printed.seek(max(0, printed.seek(0, os.SEEK_END) - _METRIC_TAIL))
            tail = printed.read().decode(errors="replace")
    if finished.timed_out:
        return f"timed out after {spec.score.timeout:g}s"
    if finished.limit is not None:
        return f"hit a limit ({finished.limit})"
    numbers = _NUMBER.findall(tail)
    return float(numbers[-1]) if numbers else "printed no number"


def yaml_metrics(
    spec: ScoringSpec, subject: ScoringSubject, checkout: Path, sandbox: Sandbox | None = None
) -> tuple[dict[str, float], list[str]]:
    """The ``score.metrics`` commands' numbers, and a flag for each that printed none."""
    metrics: dict[str, float] = {}
    flags = []
    for name, metric in spec.score.metrics.items():
        value = run_metric(spec, subject, checkout, metric.command, sandbox)
        if isinstance(value, str):
            flags.append(f"metric {name!r} {value}")
        else:
            metrics[name] = value
    return metrics, flags


def suite_metrics(tests: TestStats, verdicts: Mapping[str, int]) -> dict[str, float]:
    """The metrics every trial has: the test counts, its pass rate and its verdicts against the baseline."""
    return {
        **{name: float(count) for name, count in verdicts.items()},
        "tests_pass_rate": tests.pass_rate,
        "tests_passed": float(tests.passed),
        "tests_failed": float(tests.failed),
        "tests_errors": float(tests.errors),
        "tests_skipped": float(tests.skipped),
    }


def unmeasured_weights(score: ScoreSpec, metrics: Mapping[str, float]) -> list[str]:
    """A flag naming each ``score.weights`` key that no metric has: a typo would score every trial 0, silently.

    ``score.metrics`` that printed no number are flagged already (see :func:`yaml_metrics`).
    """
    unmeasured = sorted(set(score.weights) - set(metrics) - set(score.metrics))
    if not unmeasured:
        return []
    return [
        f"score.weights: no metric named {', '.join(map(repr, unmeasured))}; counted as 0 "
        f"(the metrics: {', '.join(sorted(metrics))})"
    ]


def weighted_score(score: ScoreSpec, metrics: Mapping[str, float], tests: TestStats) -> float:
    """The trial's score: the weighted sum of its metrics (default: the test pass rate).

    A test run that cannot be judged scores 0, whatever the other metrics say.
    """
    if tests.problem:
        return 0.0
    weights = dict(score.weights) or {"tests_pass_rate": 1.0}
    for name, metric in score.metrics.items():
        if metric.weight and name not in score.weights:
            weights[name] = metric.weight
    return round(sum(weight * metrics.get(name, 0.0) for name, weight in weights.items()), 6)
