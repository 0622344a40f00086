"""An experiment's results as typed data: what ``results.json`` holds, read back with every key checked.

The terminal table, ``summary.md``, ``report.html`` and ``--explore-merge`` all work from one
:class:`Results`.  ``to_json`` writes the file's layout (``"schema": 1``, the experiment's keys at the
top, then the ranking, statistics, race and trial records); ``from_json`` reads it back and raises a
:class:`ResultsError` naming the key that is wrong, since a merge reads folders downloaded from CI.
What can be worked out from the trials (the best trial, status counts, missing and retried trials)
is derived, not stored twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..checks import describe, is_int, is_number
from ..evidence.errors import ErrorRate, error_rates
from ..evidence.race import Elimination, PairInterval, RaceState
from ..evidence.stats import Comparison, DifferingTest, ScoreSummary, clopper_pearson
from ..names import retry_command
from ..record import TrialRecord
from ..scoring.baseline import Baseline
from ..sections import RaceSpec
from ..spec import is_safe_name

#: The layout of ``results.json`` (each trial record inside carries its own, ``record.SCHEMA``).
SCHEMA = 1

_REQUIRED: Any = object()


class ResultsError(ValueError):
    """A ``results.json`` or ``experiment.json`` this plugin did not write; the message names the key."""


class _Fields:
    """Typed reading of one mapping of a results file: a missing or mistyped value names its key path."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ResultsError(f"{where + ': ' if where else ''}expected a mapping, got {describe(data)}")
        self.data: Mapping[str, Any] = data
        self.where = where

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _value(self, key: str, default: Any, valid: Callable[[Any], bool], expected: str) -> Any:
        """The value at ``key``, checked; an optional one (with a ``default``) may be absent or null."""
        value = self.data.get(key)
        if value is None and default is not _REQUIRED:
            return default
        if key not in self.data:
            raise ResultsError(f"{self.at(key)}: missing")
        if not valid(value):
            raise ResultsError(f"{self.at(key)}: expected {expected}, got {describe(value)}")
        return value

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._value(key, default, lambda v: isinstance(v, str), "text")

    def number(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._value(key, default, is_number, "a number")

    def integer(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._value(key, default, is_int, "an integer")

    def choice(self, key: str, choices: tuple[str | None, ...]) -> Any:
        """One of ``choices`` (None among them: it may be absent or null)."""
        value = self.data.get(key)
        if value not in choices:
            shown = ", ".join("null" if c is None else repr(c) for c in choices)
            raise ResultsError(f"{self.at(key)}: expected one of {shown}, got {describe(value)}")
        return value

    def flag(self, key: str) -> bool:
        return bool(self._value(key, _REQUIRED, lambda v: isinstance(v, bool), "true or false"))

    def names(self, key: str, default: Any = _REQUIRED) -> Any:
        """A list of text (test ids, trial or file names)."""
        valid = lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v)  # noqa: E731
        names = self._value(key, default, valid, "a list of names")
        return None if names is None else list(names)

    def counts(self, key: str) -> dict[str, int]:
        valid = lambda v: isinstance(v, Mapping) and all(isinstance(k, str) and is_int(n) for k, n in v.items())  # noqa: E731
        return dict(self._value(key, _REQUIRED, valid, "a mapping of names to counts"))

    def mapping(self, key: str) -> _Fields | None:
        """The mapping at ``key``; None when it is absent, null or empty."""
        value = self.data.get(key)
        return None if value is None or value == {} else _Fields(value, self.at(key))

    def entries(
        self, key: str, *, required: bool = True, skip: Callable[[Any], bool] = lambda item: False
    ) -> list[_Fields]:
        """The mappings listed at ``key``, but those ``skip`` passes over; absent, it is empty unless ``required``."""
        items = self._value(key, _REQUIRED if required else [], lambda v: isinstance(v, list), "a list")
        return [_Fields(item, f"{self.at(key)}[{i}]") for i, item in enumerate(items) if not skip(item)]


def _race_spec(fields: _Fields) -> RaceSpec:
    return RaceSpec(
        max=fields.integer("max"),
        stop=fields.text("stop"),
        alpha=fields.number("alpha"),
        margin=fields.number("margin"),
        by=fields.text("by", "score"),
    )


@dataclasses.dataclass(kw_only=True)
class ExperimentInfo:
    """What ``experiment.json`` says about a run (``results.json`` repeats it): enough to rebuild its report."""

    experiment: str
    task: str = ""
    source: str | None = None  # the variants file, for the commands the report suggests
    base: str | None = None
    base_commit: str
    trial_names: list[str] | None = None
    variant_names: list[str] | None = None
    race: RaceSpec | None = None
    score_command: str | None = None
    plugin_version: str | None = None
    started: str | None = None
    # What one run saw; a merge of several runs leaves them out (see ``merged``).
    sandbox_warning: str | None = None
    sandbox: str | None = None
    repository_changes: list[str] = dataclasses.field(default_factory=list)
    checkout_changes: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ExperimentInfo:
        """The experiment's keys of ``experiment.json`` or ``results.json`` (where ``race`` holds more)."""
        fields = _Fields(data, "")
        race = fields.mapping("race")
        return cls(
            experiment=fields.text("experiment"),
            task=fields.text("task", ""),
            source=fields.text("source", None),
            base=fields.text("base", None),
            base_commit=fields.text("base_commit"),
            trial_names=fields.names("trial_names", None),
            variant_names=fields.names("variant_names", None),
            race=_race_spec(race) if race else None,
            score_command=fields.text("score_command", None),
            plugin_version=fields.text("plugin_version", None),
            started=fields.text("started", None),
            sandbox_warning=fields.text("sandbox_warning", None),
            sandbox=fields.text("sandbox", None),
            repository_changes=fields.names("repository_changes", []),
            checkout_changes=fields.names("checkout_changes", []),
        )

    def merged(self, trial_names: list[str]) -> ExperimentInfo:
        """The experiment as a merge of several runs reports it: every trial, and none of one run's notes."""
        return dataclasses.replace(
            self,
            trial_names=trial_names,
            started=None,
            sandbox=None,
            sandbox_warning=None,
            repository_changes=[],
            checkout_changes=[],
        )


@dataclasses.dataclass(frozen=True)
class VariantStats:
    """One variant over its trials: score statistics, the solved rate with its exact interval, pass@k.

    ``retried`` names its trials retried after a failed attempt (every attempt is counted).
    """

    name: str
    trials: list[str]
    retried: list[str]
    scores: ScoreSummary
    solved: int
    solved_ci: tuple[float, float]  # Clopper-Pearson
    pass_at_1: float
    pass_at_k: float
    pass_hat_k: float

    @property
    def k(self) -> int:
        return self.scores.n

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trials": self.trials,
            "retried": self.retried,
            **dataclasses.asdict(self.scores),
            "solved": self.solved,
            "solved_ci_low": self.solved_ci[0],
            "solved_ci_high": self.solved_ci[1],
            "k": self.k,
            "pass_at_1": self.pass_at_1,
            "pass_at_k": self.pass_at_k,
            "pass_hat_k": self.pass_hat_k,
        }

    @classmethod
    def from_json(cls, fields: _Fields) -> VariantStats:
        scores = ScoreSummary(
            n=fields.integer("n"),
            **{key: fields.number(key) for key in ("mean", "sd", "min", "max", "ci_low", "ci_high")},
        )
        solved = fields.integer("solved")
        if "solved_ci_low" in fields.data:
            solved_ci = (fields.number("solved_ci_low"), fields.number("solved_ci_high"))
        else:  # written before the solved rate had its interval; it is exact, so it is worked out again
            solved_ci = clopper_pearson(solved, scores.n)
        return cls(
            name=fields.text("name"),
            trials=fields.names("trials"),
            retried=fields.names("retried", []),
            scores=scores,
            solved=solved,
            solved_ci=solved_ci,
            pass_at_1=fields.number("pass_at_1"),
            pass_at_k=fields.number("pass_at_k"),
            pass_hat_k=fields.number("pass_hat_k"),
        )


@dataclasses.dataclass(frozen=True)
class ComparisonEntry:
    """The best variant against another: the trial-level test, and the sentence every report prints.

    The sentence is the comparison's own, plus a note when it includes retried trials.
    """

    result: Comparison
    sentence: str

    def to_json(self) -> dict[str, Any]:
        differ = [dataclasses.asdict(d) for d in self.result.tests_differ]  # a list, as JSON reads it back
        return {**dataclasses.asdict(self.result), "tests_differ": differ, "sentence": self.sentence}

    @classmethod
    def from_json(cls, fields: _Fields) -> ComparisonEntry:
        result = Comparison(
            best=fields.text("best"),
            other=fields.text("other"),
            **{key: fields.number(key) for key in ("difference", "ci_low", "ci_high", "p_value", "p_adjusted")},
            comparisons=fields.integer("comparisons"),
            test=fields.choice("test", ("fisher", "permutation")),
            method=fields.text("method"),
            k=fields.integer("k"),
            significant=fields.flag("significant"),
            repeats_needed=fields.integer("repeats_needed", None),
            tests_differ=tuple(
                DifferingTest(
                    test=d.text("test"),
                    **{key: d.integer(key) for key in ("best_passed", "best_trials", "other_passed", "other_trials")},
                )
                for d in fields.entries("tests_differ", required=False)
            ),
        )
        return cls(result, fields.text("sentence"))


@dataclasses.dataclass(frozen=True)
class RaceSection:
    """The sequential race as the reports show it: its settings, where it stands, the trials it skipped."""

    spec: RaceSpec
    state: RaceState
    skipped: list[str]

    @property
    def trials_total(self) -> int:
        return sum(self.state.trials.values())

    @property
    def trials_max(self) -> int:
        return self.spec.max * len(self.state.trials)

    def to_json(self) -> dict[str, Any]:
        state = self.state
        return {
            **dataclasses.asdict(self.spec),
            "trials": dict(state.trials),
            "trials_total": self.trials_total,
            "trials_max": self.trials_max,
            "remaining": list(state.remaining),
            "eliminated": [dataclasses.asdict(e) for e in state.eliminated],
            "decided": state.decided,
            "winner": state.winner,
            "reason": state.reason,
            "intervals": [dataclasses.asdict(i) for i in state.intervals],
            "method": state.method,
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, fields: _Fields) -> RaceSection:
        spec = _race_spec(fields)
        state = RaceState(
            remaining=tuple(fields.names("remaining")),
            eliminated=tuple(
                Elimination(e.text("variant"), e.text("by"), e.integer("trials"), e.text("sentence"))
                for e in fields.entries("eliminated")
            ),
            trials=fields.counts("trials"),
            decided=fields.choice("decided", (None, "one_left", "equivalent", "max")),
            reason=fields.text("reason"),
            intervals=tuple(
                PairInterval(i.text("first"), i.text("second"), i.integer("rounds"), i.number("low"), i.number("high"))
                for i in fields.entries("intervals")
            ),
            max_trials=spec.max,
            method=fields.text("method", ""),
        )
        return cls(spec, state, fields.names("skipped"))


@dataclasses.dataclass
class Results:
    """An experiment's results: its trials ranked best first, the baseline, the statistics and the race."""

    info: ExperimentInfo
    updated: str
    trials: list[TrialRecord]
    baseline: Baseline | None = None
    variants: list[VariantStats] = dataclasses.field(default_factory=list)  # best mean first
    comparisons: list[ComparisonEntry] = dataclasses.field(default_factory=list)
    race: RaceSection | None = None

    @property
    def best_trial(self) -> TrialRecord | None:
        return next((t for t in self.trials if t.rank == 1), None)

    @property
    def best_variant(self) -> str | None:
        """The best variant on average (with repeats it may not hold the best trial)."""
        return self.variants[0].name if self.variants else None

    @property
    def repeated(self) -> bool:
        """Whether some variant ran more than once, so that its statistics mean something."""
        return any(v.k > 1 for v in self.variants)

    @property
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
        return counts

    @property
    def failed(self) -> list[TrialRecord]:
        """The trials whose outcome is a failure, or a suite that could not be judged (see ``TrialRecord``)."""
        return [t for t in self.trials if t.failed]

    @property
    def missing(self) -> list[TrialRecord]:
        """The trials without an outcome yet: left out of the statistics; a plain rerun runs them."""
        return [t for t in self.trials if t.missing]

    @property
    def retried(self) -> list[str]:
        """The trials retried after a failed attempt (each attempt counts in the statistics)."""
        return [t.name for t in self.trials if t.retried]

    @property
    def infrastructure_errors(self) -> list[ErrorRate]:
        """Per variant, its attempts that broke in the pipeline (not in the statistics); flagged when one stands out."""
        return error_rates(self.trials)

    @property
    def retry_command(self) -> str:
        """The command that retries the failed trials ("" when none failed)."""
        names = [t.name for t in self.failed]
        return retry_command(self.info.experiment, self.info.source, names, retry_failed=True) if names else ""

    @property
    def rerun_command(self) -> str:
        """The command that runs the missing trials again ("" when none is missing)."""
        names = [t.name for t in self.missing]
        return retry_command(self.info.experiment, self.info.source, names) if names else ""

    def to_json(self) -> dict[str, Any]:
        best = self.best_trial
        return {
            "schema": SCHEMA,
            **self.info.to_json(),
            "updated": self.updated,
            "best": best.name if best else None,  # the best trial; with repeats, best_variant is the best on average
            "best_variant": self.best_variant,
            "status_counts": self.status_counts,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "variants": [v.to_json() for v in self.variants],
            "comparisons": [c.to_json() for c in self.comparisons],
            "race": self.race.to_json() if self.race else None,
            "missing": [t.name for t in self.missing],
            "retried": self.retried,
            "infrastructure_errors": [dataclasses.asdict(e) for e in self.infrastructure_errors],
            "trials": [t.to_json() for t in self.trials],
        }

    @classmethod
    def from_json(cls, data: Any) -> Results:
        """Results as ``to_json`` wrote them, checked: a ResultsError names the first key that is wrong."""
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise ResultsError(f"not a results.json of schema {SCHEMA}")
        fields = _Fields(data, "")
        race = fields.mapping("race")
        return cls(
            info=ExperimentInfo.from_json(data),
            updated=fields.text("updated"),
            trials=_trials(fields),
            baseline=baseline_from_json(data.get("baseline")),
            # The older form listed the variants' names only: no statistics to read.
            variants=[
                VariantStats.from_json(v)
                for v in fields.entries("variants", required=False, skip=lambda v: isinstance(v, str))
            ],
            comparisons=[ComparisonEntry.from_json(c) for c in fields.entries("comparisons", required=False)],
            race=RaceSection.from_json(race) if race else None,
        )


def baseline_from_json(data: Any) -> Baseline | None:
    """The baseline as ``baseline.json`` (and ``results.json``) hold it; None when there is none."""
    if data is None:
        return None
    try:
        return Baseline.from_json(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ResultsError(f"baseline: not a baseline of this plugin: {exc!r}") from None


def _trials(fields: _Fields) -> list[TrialRecord]:
    """The trial records, each with names that are safe as paths and git refs (they become both)."""
    records = []
    trials = fields.data.get("trials", [])
    if not isinstance(trials, list):
        raise ResultsError(f"trials: expected a list of trial records, got {describe(trials)}")
    for index, trial in enumerate(trials):
        at = f"trials[{index}]"
        if not isinstance(trial, dict):
            raise ResultsError(f"{at}: expected a trial record (a mapping), got {describe(trial)}")
        for key in ("name", "variant"):
            value = trial.get(key)
            if not isinstance(value, str) or not is_safe_name(value):
                raise ResultsError(
                    f"{at}.{key}: unsafe name {value!r}; expected letters, digits, '.', '_' and '-' "
                    "(names become paths and git refs)"
                )
        _Fields(trial, at).names("suspicious", [])  # findings are shown as text: a list of it, or none (older)
        try:
            records.append(TrialRecord.from_json(trial))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ResultsError(f"{at}: not a trial record of this plugin: {exc}") from None
    return records
