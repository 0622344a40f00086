"""The variants file as typed data: an experiment, its variants and their sections.

Frozen dataclasses only; :mod:`..config.variants` reads and checks the file
into them, and everything downstream takes the part it needs (a score spec,
a sandbox spec) rather than the whole file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from .limits import Limits

#: Names become paths and git refs: keep them to a safe alphabet.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


#: ``--explore-repeat auto`` and a ``repeat`` mapping without ``max``: at most this many trials per variant.
DEFAULT_RACE_MAX = 12


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    command: str
    weight: float = 0.0


@dataclasses.dataclass(frozen=True)
class ScoreSpec:
    command: str | None = None  # None: the ini / built-in default applies
    setup: str | None = None
    holdout: tuple[str, ...] = ()
    junit: str | None = None
    timeout: float | None = None
    metrics: Mapping[str, MetricSpec] = dataclasses.field(default_factory=dict)
    weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    baseline_runs: int = 2
    protect: tuple[str, ...] = ()  # globs of files the agent must not change
    protect_mode: str = "flag"  # flag | fail: what a trial that tampered gets
    suspicious: str = "flag"  # flag | fail: what a trial whose code may interfere with the test run gets
    pass_env: tuple[str, ...] = ()  # environment variables the scoring run may see besides the basics
    cache: bool = True  # reuse the outcomes of a tree scored before (see scorecache)
    max_concurrent: int | None = None  # suite runs at once across the run; None: the CPUs the run may use


#: Score settings that say when and from where a suite's outcomes come, never what they are:
#: no result, baseline or cache entry depends on them.
SCHEDULING_KEYS = frozenset({"cache", "max_concurrent"})


@dataclasses.dataclass(frozen=True)
class HomePath:
    """A path of the user's home folder an agent sees in the sandbox (``~/.claude``), read-only unless ``writable``."""

    path: str  # starts with ``~/``
    writable: bool = False


@dataclasses.dataclass(frozen=True)
class SandboxSpec:
    mode: str = "auto"  # auto | bwrap | none
    home: tuple[HomePath, ...] = ()  # what of the real home agents see (an agent CLI's config folder)
    scoring_network: bool = False


@dataclasses.dataclass(frozen=True)
class WorktreeSpec:
    copy: tuple[str, ...] = ()  # untracked files copied from the main checkout into each worktree
    setup: str | None = None  # run once in each new worktree
    keep: str = "all"  # all | failed | none: which finished trials keep their worktree folder


#: What a race decides on (``repeat.by``): the score, solved trials, or each judged test.
By = Literal["score", "solved", "tests"]
BY_CHOICES: tuple[By, ...] = ("score", "solved", "tests")


@dataclasses.dataclass(frozen=True)
class RaceSpec:
    """``repeat: {max, stop, alpha, margin, by}``: a sequential race of up to ``max`` trials per variant.

    ``stop: decided`` skips the trials the race no longer needs; ``stop: max`` runs them all and only
    reports the race.  ``by`` is what it decides on: the score, solved trials, or each judged test.
    """

    max: int = DEFAULT_RACE_MAX
    stop: str = "decided"
    alpha: float = 0.05
    margin: float = 0.0
    by: str = "score"


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    name: str
    description: str
    agent: Mapping[str, Any]  # defaults merged with the variant's overrides
    timeout: float | None = None
    sandbox: SandboxSpec | None = None  # None: the experiment's
    limits: Limits | None = None  # None: the experiment's


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """A validated ``variants.yaml``; values the file leaves out are None."""

    source: str  # file path, or a description of where the spec came from
    task: str | None
    variants: tuple[VariantSpec, ...]
    base: str | None = None
    timeout: float | None = None
    max_concurrent: int | None = None
    repeat: int | RaceSpec | None = None
    max_cost_usd: float | None = None
    score: ScoreSpec = dataclasses.field(default_factory=ScoreSpec)
    worktree: WorktreeSpec = dataclasses.field(default_factory=WorktreeSpec)
    prompt_template: str | None = None  # the template's text, read with the variants file
    sandbox: SandboxSpec = dataclasses.field(default_factory=SandboxSpec)
    limits: Limits = dataclasses.field(default_factory=Limits)


def is_safe_name(name: str) -> bool:
    """Whether ``name`` can be used as a path component and a git ref component."""
    return bool(_SAFE_NAME.fullmatch(name)) and ".." not in name and not name.endswith((".lock", "."))


def variant_hash(spec: ExperimentSpec, variant: VariantSpec, extra: Mapping[str, Any]) -> str:
    """A stable fingerprint of everything that decides a variant's result.

    ``extra`` carries the resolved settings (base commit, score command, ...)
    so that a change to any of them invalidates the saved result.
    """
    payload = {
        "task": spec.task,
        "variant": dataclasses.asdict(variant),
        # Whether scores may come from the cache, or how many suites run at once, does not change them.
        "score": {k: v for k, v in dataclasses.asdict(spec.score).items() if k not in SCHEDULING_KEYS},
        "template": spec.prompt_template,
        **extra,
    }
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
