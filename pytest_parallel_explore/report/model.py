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
import functools
from collections.abc import Mapping
from typing import Any

from ..config.checks import describe
from ..evidence.errors import ErrorRate, error_rates
from ..model.baseline import Baseline
from ..model.names import retry_command
from ..model.record import TrialRecord
from ..model.spec import RaceSpec, is_safe_name
from .fields import Fields, ResultsError
from .standing import ranks
from .statistics import ComparisonEntry, RaceSection, VariantStats, race_spec

#: The layout of ``results.json`` (each trial record inside carries its own, ``record.SCHEMA``).
SCHEMA = 1


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
    not_run: list[str] = dataclasses.field(default_factory=list)  # selected, but no worker ran them

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ExperimentInfo:
        """The experiment's keys of ``experiment.json`` or ``results.json`` (where ``race`` holds more)."""
        fields = Fields(data, "")
        race = fields.mapping("race")
        return cls(
            experiment=fields.text("experiment"),
            task=fields.text("task", ""),
            source=fields.text("source", None),
            base=fields.text("base", None),
            base_commit=fields.text("base_commit"),
            trial_names=fields.names("trial_names", None),
            variant_names=fields.names("variant_names", None),
            race=race_spec(race) if race else None,
            score_command=fields.text("score_command", None),
            plugin_version=fields.text("plugin_version", None),
            started=fields.text("started", None),
            sandbox_warning=fields.text("sandbox_warning", None),
            sandbox=fields.text("sandbox", None),
            repository_changes=fields.names("repository_changes", []),
            checkout_changes=fields.names("checkout_changes", []),
            not_run=fields.names("not_run", []),
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
            not_run=[],
        )


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

    @functools.cached_property
    def ranks(self) -> dict[str, int | None]:
        """Each trial's rank, worked out from the trials (in ranking order), never stored on them."""
        return ranks(self.trials)

    @property
    def best_trial(self) -> TrialRecord | None:
        return next((t for t in self.trials if self.ranks[t.name] == 1), None)

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
        """The command that runs the missing trials again, and those that did not run ("" when none)."""
        names = [t.name for t in self.missing]
        names += [name for name in self.info.not_run if name not in names]
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
            "trials": [{**t.to_json(), "rank": self.ranks[t.name]} for t in self.trials],
        }

    @classmethod
    def from_json(cls, data: Any) -> Results:
        """Results as ``to_json`` wrote them, checked: a ResultsError names the first key that is wrong."""
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise ResultsError(f"not a results.json of schema {SCHEMA}")
        fields = Fields(data, "")
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


def _trials(fields: Fields) -> list[TrialRecord]:
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
        Fields(trial, at).names("suspicious", [])  # findings are shown as text: a list of it, or none (older)
        Fields(trial, at).integer("round", None)  # the race pairs trials by it; older records have none
        try:
            records.append(TrialRecord.from_json(trial))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ResultsError(f"{at}: not a trial record of this plugin: {exc}") from None
    return records
