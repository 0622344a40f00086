"""A run's settings, resolved: what every trial runs with, as frozen data.

:mod:`..config.settings` builds them once from the options, ini keys and the
variants file; nothing downstream reads those again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from .limits import Limits
from .paths import ExperimentPaths, Workspace
from .spec import RaceSpec, SandboxSpec, ScoreSpec, VariantSpec, WorktreeSpec

#: Trial ``i`` may use the 100 ports from ``PORT_RANGE_START + 100 * i`` (``EXPLORE_PORT_BASE``).
PORT_RANGE_START = 20000


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of one variant, as it will be executed."""

    name: str
    variant: VariantSpec
    spec_hash: str
    timeout: float
    index: int  # position in the experiment: EXPLORE_TRIAL_INDEX, and the base of its port range
    round: int  # its number among its variant's trials (``<variant>.<round>``): 1 without repeats

    @property
    def port_base(self) -> int:
        """The first of 100 ports this trial may use (``EXPLORE_PORT_BASE``), apart from every other trial's."""
        return PORT_RANGE_START + 100 * self.index

    def env(self) -> dict[str, str]:
        """Variables that tell commands which trial they run for, so parallel trials stay apart."""
        return {
            "EXPLORE_TRIAL": self.name,
            "EXPLORE_VARIANT": self.variant.name,
            "EXPLORE_TRIAL_INDEX": str(self.index),
            "EXPLORE_PORT_BASE": str(self.port_base),
        }


@dataclasses.dataclass(frozen=True)
class TrialView:
    """What hooks are told about a trial: read-only, so no hook can change the plugin's records."""

    name: str
    variant: VariantSpec
    experiment: str
    worktree: Path
    base_commit: str
    index: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResolvedScore(ScoreSpec):
    """The ``score`` section as a run uses it: its command and timeout always known.

    ``command``: the file's, else ini ``explore_score_command``, else the default;
    ``timeout``: the file's, else the default; ``cache``: the file's, unless
    ``--explore-no-cache``; ``max_concurrent``: the file's, else the CPUs the
    run may use.
    """

    command: str
    timeout: float
    max_concurrent: int


@dataclasses.dataclass(frozen=True)
class ScoringSpec:
    """What scoring needs of a run: how to score, where, from which commit.

    The sandbox and limits are the experiment's: a scoring run is confined
    alike for every variant, and the baseline's runs use these limits.
    """

    experiment: str
    workspace: Workspace
    base_commit: str
    score: ResolvedScore
    worktree: WorktreeSpec
    sandbox: SandboxSpec
    limits: Limits

    @property
    def paths(self) -> ExperimentPaths:
        return self.workspace.experiment(self.experiment)


@dataclasses.dataclass(frozen=True)
class ScoringSubject:
    """Who a scoring or set-up command runs for: a trial, or one run of the baseline.

    ``name`` names its logs (``<name>_tests.log``) and ``{trial}``; ``env``
    holds the variables that tell its commands so (``EXPLORE_TRIAL`` ...).
    """

    name: str
    env: Mapping[str, str]
    limits: Limits


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of a run, resolved: nothing downstream looks at the variants file or ``config``."""

    experiment: str
    source: str  # where the variants came from (a file's path, or e.g. "--variants 3"): errors name it
    task: str | None
    variants: tuple[VariantSpec, ...]  # every variant of the experiment, selected for this run or not
    prompt_template: str | None  # the template's text, read with the variants file
    workspace: Workspace
    base: str
    base_commit: str
    timeout: float
    max_concurrent: int
    score: ResolvedScore
    worktree: WorktreeSpec
    sandbox: SandboxSpec  # the experiment's; a variant's own is :meth:`sandbox_of`
    limits: Limits  # the experiment's; a variant's own is in its spec
    min_score: float | None
    rerun: bool
    retry_failed: bool
    max_cost_usd: float | None
    trials: tuple[Trial, ...]
    race: RaceSpec | None = None  # a sequential race over the trials (``repeat: {max, stop}``), or None

    @property
    def variant_names(self) -> tuple[str, ...]:
        """Every variant of the experiment, selected for this run or not."""
        return tuple(v.name for v in self.variants)

    @property
    def paths(self) -> ExperimentPaths:
        return self.workspace.experiment(self.experiment)

    def view(self, trial: Trial) -> TrialView:
        return TrialView(
            trial.name, trial.variant, self.experiment, self.paths.worktree(trial.name), self.base_commit, trial.index
        )

    @property
    def scoring(self) -> ScoringSpec:
        """The part of these settings that the ``scoring`` package is given: it never sees the rest."""
        return ScoringSpec(
            self.experiment, self.workspace, self.base_commit, self.score, self.worktree, self.sandbox, self.limits
        )

    def subject(self, trial: Trial) -> ScoringSubject:
        """``trial`` as its scoring and set-up commands see it: its variables, its variant's limits."""
        return ScoringSubject(trial.name, trial.env(), self.limits_of(trial.variant))

    def limits_of(self, variant: VariantSpec) -> Limits:
        """``variant``'s own ``limits``, else the experiment's."""
        return variant.limits or self.limits

    def sandbox_of(self, variant: VariantSpec) -> SandboxSpec:
        """``variant``'s own ``sandbox`` (its agent's), else the experiment's."""
        return variant.sandbox or self.sandbox
