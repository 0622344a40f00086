"""Resolving options, ini keys and the variants file into one frozen :class:`Settings`.

Precedence, for every setting: command line > ``variants.yaml`` > ini
(``[tool.pytest.ini_options]``) > built-in default.  This module is the only
place that reads the plugin's options from ``config``; everything downstream
gets the resolved settings from ``config.stash``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from ..model.paths import Workspace
from ..model.settings import ResolvedScore, Settings, Trial
from ..model.spec import (
    ExperimentSpec,
    RaceSpec,
    ScoreSpec,
    VariantSpec,
    is_safe_name,
    variant_hash,
)
from .checks import parse_duration
from .defaults import DEFAULT_DIR, DEFAULT_MAX_CONCURRENT, DEFAULT_SCORE_COMMAND, DEFAULT_SCORE_TIMEOUT, DEFAULT_TIMEOUT
from .keys import VARIANTS_INPUT_KEY
from .reading import VariantsInput, read_variants
from .variants import Backends, SpecError, load_spec


def resolve_workspace(config: pytest.Config) -> Workspace:
    """The repository around the invocation directory and its explore dir."""
    from ..repo import gitops  # here, not at the top: without --explore the plugin imports no git

    try:
        root = gitops.repo_root(config.invocation_params.dir)
    except gitops.GitProblem as exc:
        raise pytest.UsageError(f"--explore: {exc}") from None
    if config.getoption("explore_dir"):
        where, raw = "--explore-dir", config.getoption("explore_dir")
    elif config.getini("explore_dir"):
        where, raw = "ini explore_dir", config.getini("explore_dir")
    else:
        where, raw = "the default explore_dir", DEFAULT_DIR
    root = root.resolve()
    explore_dir = (root / raw).resolve()
    _check_explore_dir(root, explore_dir, f"{where} {raw!r}")
    return Workspace(root, explore_dir)


def _check_explore_dir(root: Path, explore_dir: Path, where: str) -> None:
    """The explore dir must be a folder of its own inside the repository, apart from ``.git`` and tracked files.

    Worktrees, results and cleanups write and delete there, so it may hold
    nothing the user's repository owns.
    """
    from ..repo import gitops

    expected = "expected a folder inside the repository, not tracked by git (e.g. .data/parallel_explorer)"
    if not explore_dir.is_relative_to(root):
        raise pytest.UsageError(f"{where}: {explore_dir} is outside the repository {root}; {expected}")
    relative = explore_dir.relative_to(root)
    if not relative.parts:
        raise pytest.UsageError(f"{where}: is the repository's root {root} itself; {expected}")
    if relative.parts[0] == ".git":
        raise pytest.UsageError(f"{where}: {explore_dir} is inside git's own .git folder; {expected}")
    tracked = gitops.tracked_at(root, relative.as_posix())
    if tracked:
        shown = ", ".join(tracked[:3]) + (f" and {len(tracked) - 3} more" if len(tracked) > 3 else "")
        raise pytest.UsageError(
            f"{where}: {explore_dir} would mix the plugin's files with files git tracks ({shown}); {expected}"
        )


def resolve_settings(
    config: pytest.Config, backends: Backends, base_commit: str | None = None, variants_input: str | None = None
) -> Settings:
    """Load the variants file and resolve every setting, or raise ``pytest.UsageError``.

    On xdist workers, ``base_commit`` and ``variants_input`` are the
    controller's (:data:`VARIANTS_INPUT_KEY`): every worker branches from the
    very same commit and runs the very same variants, even if HEAD or the
    file changes while they start.
    """
    name: str = config.getoption("explore")
    _check_experiment_name(name)
    variants_arg = config.getoption("explore_variants")
    if variants_arg is None:
        raise pytest.UsageError(
            f"--explore {name}: which variants? add --variants FILE (YAML or JSON), inline JSON, or a number"
        )
    workspace = resolve_workspace(config)
    ini_backend = config.getini("explore_agent") or None
    default_backend = ini_backend or ("anthropic" if os.environ.get("ANTHROPIC_API_KEY") else None)
    try:
        if variants_input is None:
            read = read_variants(variants_arg, config.invocation_params.dir)
            config.stash[VARIANTS_INPUT_KEY] = read.to_json_text()
        else:
            read = VariantsInput.from_json_text(variants_input)
        spec = load_spec(
            variants_arg,
            task=config.getoption("explore_task"),
            invocation_dir=config.invocation_params.dir,
            default_backend=default_backend,
            backends=backends,
            read=read,
        )
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None

    base = spec.base or "HEAD"
    if base_commit is None:
        from ..repo import gitops

        try:
            base_commit = gitops.resolve_commit(workspace.repo_root, base)
        except gitops.GitProblem as exc:
            raise pytest.UsageError(f"{spec.source}: base: {exc}") from None
    timeout = (
        _first_duration(
            ("--explore-timeout", config.getoption("explore_timeout")),
            (f"{spec.source}: timeout", spec.timeout),
            ("ini explore_timeout", config.getini("explore_timeout") or None),
        )
        or DEFAULT_TIMEOUT
    )
    max_concurrent = spec.max_concurrent or _ini_int(config, "explore_max_concurrent") or DEFAULT_MAX_CONCURRENT
    score = _resolve_score(
        spec.score,
        command=spec.score.command or config.getini("explore_score_command") or DEFAULT_SCORE_COMMAND,
        timeout=spec.score.timeout or DEFAULT_SCORE_TIMEOUT,
        cache=spec.score.cache and not config.getoption("explore_no_cache", False),
        max_concurrent=spec.score.max_concurrent or usable_cpus(),
    )
    option = config.getoption("explore_repeat")
    repeat_option = parse_repeat(option) if option is not None else None
    race = _race(repeat_option, spec)
    repeat = race.max if race else spec.repeat if isinstance(spec.repeat, int) else 1
    if isinstance(repeat_option, int):
        repeat = repeat_option
    trials = _trials(spec, repeat, timeout, {"base_commit": base_commit, "score_command": score.command}, race)
    return Settings(
        experiment=name,
        source=spec.source,
        task=spec.task,
        variants=spec.variants,
        prompt_template=spec.prompt_template,
        workspace=workspace,
        base=base,
        base_commit=base_commit,
        timeout=timeout,
        max_concurrent=max_concurrent,
        score=score,
        worktree=spec.worktree,
        sandbox=spec.sandbox,
        limits=spec.limits,
        min_score=config.getoption("explore_min_score"),
        rerun=bool(config.getoption("explore_rerun")),
        max_cost_usd=spec.max_cost_usd,
        retry_failed=bool(config.getoption("explore_retry_failed")),
        trials=trials,
        race=race,
    )


def _resolve_score(
    score: ScoreSpec, *, command: str, timeout: float, cache: bool, max_concurrent: int
) -> ResolvedScore:
    """The file's ``score`` section with the resolved ``command``, ``timeout``, ``cache`` and ``max_concurrent``."""
    fields = {f.name: getattr(score, f.name) for f in dataclasses.fields(score)}
    resolved = {"command": command, "timeout": timeout, "cache": cache, "max_concurrent": max_concurrent}
    return ResolvedScore(**{**fields, **resolved})


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, as ``taskset`` or a container sets it): suites at once."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_repeat(value: str) -> int | str:
    """``--explore-repeat``: a whole number >= 1, or ``auto`` (a sequential race)."""
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise pytest.UsageError(
            f"--explore-repeat: expected a whole number >= 1 or 'auto' (a sequential race), got {value!r}"
        )
    return number


def _race(option: int | str | None, spec: ExperimentSpec) -> RaceSpec | None:
    """The race to run: ``--explore-repeat auto`` (the file's race settings, if any), else the file's race."""
    if isinstance(option, int):
        return None
    if option == "auto":
        return spec.repeat if isinstance(spec.repeat, RaceSpec) else RaceSpec()
    return spec.repeat if isinstance(spec.repeat, RaceSpec) else None


def _trials(
    spec: ExperimentSpec, repeat: int, timeout: float, fingerprint: dict[str, Any], race: RaceSpec | None
) -> tuple[Trial, ...]:
    """Every trial to run: a variant's name, or ``<variant>.<k>`` for each of ``repeat`` repeats.

    A race orders them round by round (``a.1, b.1, a.2, b.2, ...``): items start in that order, so
    each round's trials run before the next round's, and a trial decides at its start whether the
    race still needs it.
    """
    named: list[tuple[int, int, str, VariantSpec]] = []
    for position, variant in enumerate(spec.variants):
        single = repeat == 1 and race is None
        names = [variant.name] if single else [f"{variant.name}.{k}" for k in range(1, repeat + 1)]
        named.extend((k, position, name, variant) for k, name in enumerate(names, start=1))
    if race is not None:
        named.sort(key=lambda entry: (entry[0], entry[1]))
    trials: list[Trial] = []
    for k, _, name, variant in named:
        limit = variant.timeout or timeout
        spec_hash = variant_hash(spec, variant, {**fingerprint, "timeout": limit})
        trials.append(Trial(name, variant, spec_hash, limit, index=len(trials), round=k))
    clashes = sorted({t.name for t in trials if sum(u.name == t.name for u in trials) > 1})
    if clashes:
        raise pytest.UsageError(
            f"{spec.source}: variants: with repeat {repeat}, the trial names {', '.join(clashes)} clash "
            "with a variant's name; rename that variant"
        )
    return tuple(trials)


def _check_experiment_name(name: str) -> None:
    if not is_safe_name(name):
        raise pytest.UsageError(
            f"--explore: unsafe experiment name {name!r}; it is used in paths and git refs: "
            "letters, digits, '.', '_' and '-'"
        )


def _first_duration(*candidates: tuple[str, Any]) -> float | None:
    for where, value in candidates:
        if value is None:
            continue
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except ValueError:
            raise pytest.UsageError(
                f"{where}: expected a duration such as 90, '90s', '20m' or '1h', got {value!r}"
            ) from None
    return None


def _ini_int(config: pytest.Config, key: str) -> int | None:
    raw = config.getini(key)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise pytest.UsageError(f"ini {key}: expected a whole number >= 1, got {raw!r}")
    return value
