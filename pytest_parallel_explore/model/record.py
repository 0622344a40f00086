"""The trial record: the state of one trial, saved after every step.

A record is plain data with an explicit ``to_json``/``from_json`` and a schema
version, so progress files written by one version stay readable by the next.
Files are always replaced atomically (temp file in the same folder, then
``os.replace``) so a crash or Ctrl-C never leaves half a file behind.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from .jsonfile import read_regular, write_atomic
from .paths import ExperimentPaths

SCHEMA = 1


class Status(str, enum.Enum):
    """Where a trial is: the steps in order, then the ways it can end."""

    PENDING = "pending"
    WORKTREE = "worktree"
    AGENT = "agent"
    SCORE = "score"
    DONE = "done"
    AGENT_FAILED = "agent_failed"
    TIMEOUT = "timeout"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        """The trial's run is over, with an outcome or not (nothing of it is still running)."""
        return self in FINISHED

    @property
    def outcome(self) -> bool:
        """A result of the variant: reused by a plain rerun, counted in the statistics.

        ``error`` (the pipeline broke: git, the suite could not start, ``score.setup`` failed) and an
        interrupted step are not outcomes: the variant is not to blame, so the trial is "missing" and
        a plain rerun runs it again.
        """
        return self in OUTCOMES


FINISHED = frozenset({Status.DONE, Status.AGENT_FAILED, Status.TIMEOUT, Status.ERROR, Status.SKIPPED})
OUTCOMES = frozenset({Status.DONE, Status.AGENT_FAILED, Status.TIMEOUT, Status.SKIPPED})
#: The statuses that are the variant's failure (with an unjudged suite: see ``TrialRecord.failed``).
FAILED = frozenset({Status.AGENT_FAILED, Status.TIMEOUT})
#: ``skipped_by`` of a trial the sequential race did not need; recomputed by every run, never reused.
SKIPPED_BY_RACE = "race"
#: Keys of ``steps["score"]``: since when the suite waits for a slot (``score.max_concurrent``), while it
#: waits; then how many seconds it waited.  The step's ``seconds`` include the wait; the suite's do not.
SUITE_WAITING, SUITE_WAIT = "suite_waiting_since", "suite_wait"
#: Key of ``steps["agent"]`` and ``steps["score"]``: when the repository was checked after them (``worker.tampering``).
REPO_CHECKED = "repo_checked"
#: The test report's ``user_properties`` entry that carries a trial's final record (its JSON) to the controller.
RECORD_PROPERTY = "explore_record"


@dataclasses.dataclass
class AgentStats:
    """What the agent did and what it cost; filled in by the agent backend."""

    backend: str = ""
    model: str | None = None
    exit_code: int | None = None
    seconds: float = 0.0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0  # priced with the one price table (agents.pricing) where it knows the model
    cli_cost_usd: float | None = None  # an agent CLI's own figure, when it differs from cost_usd
    stop_reason: str | None = None
    session_id: str | None = None
    per_turn: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DiffStats:
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    files: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TestStats:
    """The project's test suite as run in the worktree.

    ``cases`` maps each test's node id to ``{"outcome", "duration"}`` so that
    variants can be compared test by test.  ``problem`` is set when the suite
    could not be judged (no tests collected, did not start): the score is 0.
    ``verdicts`` maps each judged test to its verdict against the baseline
    (``fixed``, ``broken``, ...), stored when the trial is judged so that the
    report shows what was decided then rather than working it out again.
    """

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    exit_code: int | None = None
    problem: str | None = None
    cases: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    flaky: list[str] = dataclasses.field(default_factory=list)  # flaky at base: not judged
    added: list[str] = dataclasses.field(default_factory=list)  # not at the base: the agent's, not judged
    verdicts: dict[str, str] = dataclasses.field(default_factory=dict)  # test -> verdict against the baseline
    faults: list[str] = dataclasses.field(default_factory=list)  # what the run's reports disagreed on
    plugins: list[str] = dataclasses.field(default_factory=list)  # loaded from entry points (the baseline's run)

    __test__ = False  # not a test class, whatever pytest thinks of the name

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors

    @property
    def judged(self) -> tuple[int, int]:
        """``(passed, judged)``: of the tests the baseline judges, those this run reports passed.

        The judged tests are fixed by the baseline (see ``baseline.Baseline.judged``): a judged test
        skipped, xfailed, xpassed, errored or missing here is not passed, so an implementation that
        skips what it does not implement cannot shrink the denominator.  Before a trial is judged (and
        for the baseline itself, or with no base tests to judge against) it is passed over run, skips
        aside, of the tests not flaky at the base and not added by the agent.
        """
        judged = [v for v in self.verdicts.values() if v != "added"]
        if judged:
            return sum(v in ("kept", "fixed") for v in judged), len(judged)
        if not self.flaky and not self.added:
            return self.passed, self.total
        left_out = {*self.flaky, *self.added}
        ran = [c["outcome"] for n, c in self.cases.items() if n not in left_out and c["outcome"] != "skipped"]
        return ran.count("passed"), len(ran)

    @property
    def pass_rate(self) -> float:
        """Passed over judged (see :attr:`judged`); 0 when the run could not be judged."""
        passed, judged = self.judged
        return passed / judged if judged and not self.problem else 0.0


@dataclasses.dataclass
class TrialRecord:
    """One trial: identity, state, and everything measured so far."""

    experiment: str
    name: str
    variant: str
    round: int = 1  # its number among its variant's trials (``Trial.round``): the race pairs trials by it
    description: str = ""
    spec_hash: str = ""
    status: Status = Status.PENDING
    reason: str | None = None
    branch: str = ""
    base_commit: str = ""
    commit: str | None = None
    worktree: str = ""
    setup_files: list[str] = dataclasses.field(default_factory=list)  # made by worktree.copy/setup, not the agent
    agent: AgentStats = dataclasses.field(default_factory=AgentStats)
    diff: DiffStats = dataclasses.field(default_factory=DiffStats)
    tests: TestStats = dataclasses.field(default_factory=TestStats)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    verdicts: dict[str, int] = dataclasses.field(default_factory=dict)  # against the baseline, per verdict
    broken_tests: list[str] = dataclasses.field(default_factory=list)
    tampering: list[str] = dataclasses.field(default_factory=list)  # protected files, hold-out, git state it changed
    suspicious: list[str] = dataclasses.field(default_factory=list)  # "path:line: reason", see scoring.suspicious
    score: float | None = None
    flags: list[str] = dataclasses.field(default_factory=list)
    steps: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    agent_failure: str | None = None  # why the agent failed, kept from the agent step on
    agent_timed_out: bool = False
    owner_pid: int | None = None  # the process running the trial
    process_groups: list[list[int]] = dataclasses.field(default_factory=list)  # live ones: [pgid, start time]
    started_at: float | None = None
    finished_at: float | None = None
    from_checkpoint: bool = False
    skipped_by: str | None = None  # "budget" or "race" (SKIPPED_BY_RACE), for a skipped trial
    # Every run of the trial that ended: status, reason, started, finished, cost.
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    score_cached: bool = False  # its tests' outcomes came from the score cache (the same tree scored before)
    race_horizon: int | None = None  # the race's declared max when this trial ran (see evidence.racing)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data of its own: changing it changes nothing here.

        Read back from :meth:`json_text`: json's C code copies a record of 300
        tests four times faster than ``dataclasses.asdict``.
        """
        data: dict[str, Any] = json.loads(self.json_text())
        return data

    def json_text(self) -> str:
        """The record as one line of JSON, read straight from its fields (saved after every step: no copy)."""
        data = _fields_of(self)
        data["status"] = self.status.value
        data["tests"] = {**data["tests"], "total": self.tests.total, "pass_rate": self.tests.pass_rate}
        return json.dumps({"schema": SCHEMA, **data})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialRecord:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported record schema {data.get('schema')!r}")
        fields = _known_fields(cls, data)
        if fields.get("round") is None:
            fields["round"] = _round_in_name(data)
        fields["status"] = Status(fields.get("status", "pending"))
        fields["agent"] = _from_dict(AgentStats, data.get("agent", {}))
        fields["diff"] = _from_dict(DiffStats, data.get("diff", {}))
        fields["tests"] = _from_dict(TestStats, data.get("tests", {}))
        return cls(**fields)

    @property
    def ok(self) -> bool:
        """True when the trial ran and was scored on a judgeable test run."""
        return self.status is Status.DONE and not self.tests.problem

    @property
    def missing(self) -> bool:
        """No outcome yet (interrupted, or broken by the pipeline): left out of the statistics, shown as missing."""
        return not self.status.outcome

    @property
    def failed(self) -> bool:
        """A failure of the variant: its agent failed or timed out, or its work could not be judged.

        An outcome: reused by a plain rerun, run again with ``--explore-retry-failed``.  An ``error``
        is not a failure of the variant: that trial is missing.
        """
        return self.status in FAILED or self.unjudged

    @property
    def unjudged(self) -> bool:
        """Done, but its suite could not be judged (nothing collected, did not start): scored 0, and failed."""
        return self.status is Status.DONE and bool(self.tests.problem)

    @property
    def race_skipped(self) -> bool:
        """Skipped because the sequential race did not need it; every run decides that again."""
        return self.status is Status.SKIPPED and self.skipped_by == SKIPPED_BY_RACE

    def retryable(self, retry_failed: bool) -> bool:
        """Whether a run should run this trial again rather than reuse it (same spec, no ``--explore-rerun``).

        A trial without an outcome always is; a failed one with ``--explore-retry-failed``
        (``retry_failed``); one the race skipped always is, since the race decides again from the
        saved records.
        """
        return self.missing or (retry_failed and self.failed) or self.race_skipped

    @property
    def retry_selected(self) -> bool:
        """Whether ``--explore-retry-failed`` selects this trial's item: failed, or missing.

        A trial the race skipped is not selected: a plain run decides the race again.
        """
        return self.failed or self.missing

    @property
    def retried(self) -> bool:
        """An earlier attempt failed, and this record is a later one (its outcome favours the variant)."""
        return any(a.get("failed", Status(a["status"]) in FAILED) for a in self.attempts[:-1])

    @property
    def solved(self) -> bool:
        """Scored, with every judged test passed."""
        return self.score is not None and self.tests.pass_rate == 1.0

    @property
    def passed_tests(self) -> list[str]:
        """The judged tests this run passed (none when it was not judged)."""
        return sorted(name for name, verdict in self.tests.verdicts.items() if verdict in ("kept", "fixed"))

    def end_attempt(self, cost: float) -> None:
        """Add this run of the trial, now ended, to ``attempts``, with what the statistics need of it.

        Every finished attempt counts in the race (a retried failure is still a failure), so an
        attempt keeps its score, whether it solved the task and which judged tests it passed.
        """
        self.attempts.append(
            {
                "status": self.status.value,
                "failed": self.failed,
                "reason": self.reason,
                "started": self.started_at,
                "finished": self.finished_at,
                "cost": cost,
                "score": self.score,
                "solved": self.solved,
                "passed_tests": self.passed_tests,
            }
        )

    def finished_step(self, status: Status) -> bool:
        """Whether the step ``status`` ran to its end in this record."""
        return "seconds" in self.steps.get(status.value, {})

    @property
    def suite_waiting_since(self) -> float | None:
        """When its suite started waiting for a slot, while it still waits."""
        return self.steps.get(Status.SCORE.value, {}).get(SUITE_WAITING)

    @property
    def suite_wait(self) -> float | None:
        """How long its suite waited for a slot, once it had one."""
        return self.steps.get(Status.SCORE.value, {}).get(SUITE_WAIT)

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at


_T = TypeVar("_T")


def _round_in_name(data: dict[str, Any]) -> int:
    """The round of a record written without one (by plugin 0.2.0 and older): ``k`` of its name ``<variant>.<k>``."""
    name, variant = str(data.get("name", "")), str(data.get("variant", ""))
    k = name.removeprefix(f"{variant}.")
    return int(k) if k != name and k.isascii() and k.isdigit() else 1


def _known_fields(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
    # Unknown keys are dropped so that newer files load in older code.
    return cls(**_known_fields(cls, data))


def save(record: TrialRecord, path: Path) -> None:
    write_atomic(path, record.json_text() + "\n")


def _fields_of(value: Any) -> Any:
    """A dataclass as a dict of its fields (nested ones too), sharing every other value: for ``json.dumps``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _fields_of(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class CorruptRecord(Exception):
    """A progress file exists but cannot be read as a record (truncated, edited, other schema)."""


def load(path: Path) -> TrialRecord | None:
    """The record saved at ``path``, or None when there is none; CorruptRecord when unreadable."""
    try:
        data = read_regular(path, 64 << 20)  # no record of the plugin's is near (300 tests: 50 KB)
    except ValueError as exc:
        raise CorruptRecord(f"{path}: {exc}") from None
    if data is None:
        return None
    try:
        return TrialRecord.from_json(json.loads(data.decode("utf-8")))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptRecord(f"{path}: {exc}") from None


def try_load(path: Path) -> TrialRecord | None:
    """The record at ``path``, or None when it is missing or unreadable (for display only)."""
    try:
        return load(path)
    except CorruptRecord:
        return None


def retry_selection(paths: ExperimentPaths, trials: Iterable[str]) -> list[str]:
    """The trials among ``trials`` that ``--explore-retry-failed`` runs again (:attr:`TrialRecord.retry_selected`)."""
    return [record.name for record in load_records(paths, trials) if record.retry_selected]


def load_records(paths: ExperimentPaths, trials: Iterable[str] | None = None) -> list[TrialRecord]:
    """The saved records of ``trials`` (default: every trial with a progress file)."""
    if trials is None:
        trials = sorted(p.name[: -len("_progress.json")] for p in paths.results.glob("*_progress.json"))
    records = []
    for name in trials:
        record = try_load(paths.trial_file(name, "_progress.json"))
        if record is not None:
            records.append(record)
    return records
