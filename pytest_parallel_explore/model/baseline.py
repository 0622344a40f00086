"""The base commit's outcomes as data: what every trial is judged against (see :mod:`..scoring.baseline`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .record import TestStats

#: Reserved trial name: the baseline's files are ``results/baseline.<run>_*``.
BASELINE = "baseline"
VERDICTS = ("fixed", "kept", "broken", "still_failing", "added", "removed")
#: Outcomes at the base that make a test one every trial is judged on (a test skipped at the base is not).
JUDGED_AT_BASE = ("passed", "failed", "error")


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The base commit's per-test outcomes (``passed``/``failed``/...), its flaky tests, the tests judged.

    ``judged``: the tests every trial is judged on, fixed here so that a
    trial cannot leave any out: each base test that passed, failed or
    errored at the base and each hold-out test, flaky ones aside.
    ``plugins``: the plugins the base's run loaded from entry points,
    which the trials' runs load by name (see :mod:`.pinning`).
    """

    key: str
    base_commit: str
    runs: int
    cases: Mapping[str, str]
    flaky: frozenset[str]
    tests: TestStats
    judged: frozenset[str]
    plugins: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "key": self.key,
            "base_commit": self.base_commit,
            "runs": self.runs,
            "cases": dict(self.cases),
            "flaky": sorted(self.flaky),
            "judged": sorted(self.judged),
            "plugins": list(self.plugins),
            "tests": {**dataclasses.asdict(self.tests), "total": self.tests.total, "pass_rate": self.tests.pass_rate},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Baseline:
        tests = {k: v for k, v in data["tests"].items() if k not in ("total", "pass_rate")}
        return cls(
            key=data["key"],
            base_commit=data["base_commit"],
            runs=data["runs"],
            cases=data["cases"],
            flaky=frozenset(data["flaky"]),
            tests=TestStats(**tests),
            judged=frozenset(data["judged"]),
            plugins=tuple(data["plugins"]),
        )
