"""The sections of ``variants.yaml`` below the top level: ``score``, ``sandbox``, ``worktree`` and ``repeat``.

Each section is a frozen dataclass and the function that reads it from the
parsed file, adding a problem (key path and what is expected) for each bad
value; :mod:`.spec` puts the sections together.
"""

from __future__ import annotations

from typing import Any

from ..model.spec import BY_CHOICES, HomePath, MetricSpec, RaceSpec, SandboxSpec, ScoreSpec, WorktreeSpec
from .checks import choice, describe, duration, env_names, flag, is_number, optional, paths, positive_int, unknown_keys

SCORE_KEYS = frozenset(
    {
        "command",
        "setup",
        "holdout",
        "junit",
        "metrics",
        "weights",
        "timeout",
        "baseline_runs",
        "protect",
        "protect_mode",
        "suspicious",
        "pass_env",
        "cache",
        "max_concurrent",
    }
)

SANDBOX_KEYS = frozenset({"mode", "home", "writable", "scoring_network"})
HOME_PATH_KEYS = frozenset({"path", "writable"})

SANDBOX_MODES = ("auto", "bwrap", "none")

WORKTREE_KEYS = frozenset({"copy", "setup", "keep"})
#: Which finished trials keep their worktree (the branch always holds the work).
KEEP_CHOICES = ("all", "failed", "none")

METRIC_KEYS = frozenset({"command", "weight"})

RACE_KEYS = frozenset({"max", "stop", "alpha", "margin", "by"})

RACE_STOPS = ("decided", "max")


def parse_score(raw: Any, problems: list[str]) -> ScoreSpec:
    if not isinstance(raw, dict):
        problems.append(f"score: expected a mapping (command, setup, holdout, metrics, weights), got {describe(raw)}")
        return ScoreSpec()
    problems.extend(unknown_keys(raw, SCORE_KEYS, "score."))
    command = optional(raw, "command", str, "a shell command", "score.", problems)
    setup = optional(raw, "setup", str, "a shell command", "score.", problems)
    junit = optional(raw, "junit", str, "a path to a junit XML file", "score.", problems)
    holdout = paths(raw, "holdout", "score.", problems)
    metrics: dict[str, MetricSpec] = {}
    raw_metrics = raw.get("metrics") or {}
    if not isinstance(raw_metrics, dict):
        problems.append(
            f"score.metrics: expected a mapping of name -> {{command, weight}}, got {describe(raw_metrics)}"
        )
        raw_metrics = {}
    for name, body in raw_metrics.items():
        where = f"score.metrics.{name}"
        if isinstance(body, str):
            body = {"command": body}
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            problems.append(f'{where}: expected {{command: "...", weight: 0.5}} or a command, got {describe(body)}')
            continue
        problems.extend(unknown_keys(body, METRIC_KEYS, where + "."))
        weight = body.get("weight", 0.0)
        if not is_number(weight):
            problems.append(f"{where}.weight: expected a number, got {describe(weight)}")
            weight = 0.0
        metrics[str(name)] = MetricSpec(body["command"], float(weight))
    weights: dict[str, float] = {}
    raw_weights = raw.get("weights") or {}
    if not isinstance(raw_weights, dict):
        problems.append(f"score.weights: expected a mapping of metric -> weight, got {describe(raw_weights)}")
        raw_weights = {}
    for name, weight in raw_weights.items():
        if not is_number(weight):
            problems.append(f"score.weights.{name}: expected a number, got {describe(weight)}")
        else:
            weights[str(name)] = float(weight)
    return ScoreSpec(
        command=command,
        setup=setup,
        holdout=holdout,
        junit=junit,
        timeout=duration(raw, "timeout", "score.", problems),
        metrics=metrics,
        weights=weights,
        baseline_runs=positive_int(raw, "baseline_runs", "score.", problems) or 2,
        protect=paths(raw, "protect", "score.", problems),
        protect_mode=choice(raw, "protect_mode", ("flag", "fail"), "score.", problems) or "flag",
        suspicious=choice(raw, "suspicious", ("flag", "fail"), "score.", problems) or "flag",
        pass_env=env_names(raw, "pass_env", "score.", problems),
        cache=flag(raw, "cache", "score.", problems),
        max_concurrent=positive_int(raw, "max_concurrent", "score.", problems),
    )


def parse_sandbox(raw: Any, default: SandboxSpec, where: str, problems: list[str]) -> SandboxSpec:
    """``sandbox: auto`` (a mode) or ``{mode, writable, scoring_network}``, on top of ``default``."""
    if isinstance(raw, str):
        raw = {"mode": raw}
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected 'auto', 'bwrap', 'none' or a mapping (mode, writable), got {describe(raw)}")
        return default
    problems.extend(unknown_keys(raw, SANDBOX_KEYS, where + "."))
    network = raw.get("scoring_network", default.scoring_network)
    if not isinstance(network, bool):
        problems.append(f"{where}.scoring_network: expected true or false, got {describe(network)}")
        network = default.scoring_network
    home = _home_paths(raw.get("home", []), f"{where}.home", problems)
    # ``writable: [~/.claude]``, from before ``home``: the same paths, writable.
    home += tuple(HomePath(p.path, True) for p in _home_paths(raw.get("writable", []), f"{where}.writable", problems))
    return SandboxSpec(
        mode=choice(raw, "mode", SANDBOX_MODES, where + ".", problems) or default.mode,
        home=home or default.home,
        scoring_network=network,
    )


_HOME_EXPECTED = "a path in your home folder such as '~/.claude', or {path: '~/.config/x', writable: true}"


def _home_paths(raw: Any, where: str, problems: list[str]) -> tuple[HomePath, ...]:
    """``[~/.claude, {path: ~/.config/x, writable: true}]``: paths under ``~/``, never leaving it."""
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list):
        problems.append(f"{where}: expected a list of paths, each {_HOME_EXPECTED}, got {describe(raw)}")
        return ()
    found = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        entry = {"path": item} if isinstance(item, str) else item
        if not isinstance(entry, dict):
            problems.append(f"{at}: expected {_HOME_EXPECTED}, got {describe(item)}")
            continue
        problems.extend(unknown_keys(entry, HOME_PATH_KEYS, at + "."))
        path, writable = entry.get("path"), entry.get("writable", False)
        if not isinstance(path, str) or not path.startswith("~/") or ".." in path.split("/") or path == "~/":
            problems.append(f"{at}: expected {_HOME_EXPECTED}, got {describe(path)}")
        elif not isinstance(writable, bool):
            problems.append(f"{at}.writable: expected true or false, got {describe(writable)}")
        else:
            found.append(HomePath(path, writable))
    return tuple(found)


def parse_worktree(raw: Any, problems: list[str]) -> WorktreeSpec:
    if not isinstance(raw, dict):
        problems.append(f"worktree: expected a mapping (copy, setup, keep), got {describe(raw)}")
        return WorktreeSpec()
    problems.extend(unknown_keys(raw, WORKTREE_KEYS, "worktree."))
    return WorktreeSpec(
        copy=paths(raw, "copy", "worktree.", problems),
        setup=optional(raw, "setup", str, "a shell command", "worktree.", problems),
        keep=choice(raw, "keep", KEEP_CHOICES, "worktree.", problems) or "all",
    )


def parse_repeat(raw: Any, problems: list[str]) -> int | RaceSpec | None:
    """``repeat: K`` (fixed trials per variant) or ``repeat: {max, stop, alpha, margin, by}`` (a race)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        expected = "a whole number >= 1, or a race such as {max: 12, stop: decided, alpha: 0.05}"
        value = optional({"repeat": raw}, "repeat", int, expected, "", problems)
        if value is not None and value < 1:
            problems.append(f"repeat: expected {expected}, got {value}")
            return None
        return value
    problems.extend(unknown_keys(raw, RACE_KEYS, "repeat."))
    found = len(problems)
    maximum = positive_int(raw, "max", "repeat.", problems)
    stop = choice(raw, "stop", RACE_STOPS, "repeat.", problems)
    by = choice(raw, "by", BY_CHOICES, "repeat.", problems)  # not "on": YAML reads it as true
    alpha = optional(raw, "alpha", (int, float), "a number between 0 and 1 (exclusive)", "repeat.", problems)
    if alpha is not None and not 0 < alpha < 1:
        problems.append(f"repeat.alpha: expected a number between 0 and 1 (exclusive), got {alpha!r}")
    margin = optional(raw, "margin", (int, float), "a score difference in [0, 1)", "repeat.", problems)
    if margin is not None and not 0 <= margin < 1:
        problems.append(f"repeat.margin: expected a score difference in [0, 1), got {margin!r}")
    if len(problems) > found:
        return None
    default = RaceSpec()
    return RaceSpec(
        max=maximum or default.max,
        stop=stop or default.stop,
        alpha=float(alpha) if alpha is not None else default.alpha,
        margin=float(margin) if margin is not None else default.margin,
        by=by or default.by,
    )
