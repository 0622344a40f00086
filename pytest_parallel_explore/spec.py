"""Loading and validating an experiment's variants (``--variants``).

``--variants`` is a YAML or JSON file, inline JSON (``{"name": "description"}``
or a whole spec), or an integer N (N variants with the same task).  Everything
is checked before anything is created; all problems are reported together as
one :class:`pytest.UsageError` naming the file, the key path and what was
expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Names become paths and git refs: keep them to a safe alphabet.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([hms]?)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}

TOP_KEYS = frozenset(
    {
        "task",
        "base",
        "timeout",
        "max_concurrent",
        "repeat",
        "max_cost_usd",
        "agent",
        "score",
        "worktree",
        "variants",
        "prompt_template",
        "sandbox",
    }
)
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
        "pass_env",
    }
)
SANDBOX_KEYS = frozenset({"mode", "writable", "scoring_network"})
SANDBOX_MODES = ("auto", "bwrap", "none")
WORKTREE_KEYS = frozenset({"copy", "setup", "keep"})
#: Which finished trials keep their worktree (the branch always holds the work).
KEEP_CHOICES = ("all", "failed", "none")
#: Trial names the plugin uses for itself.
RESERVED_NAMES = frozenset({"baseline"})
METRIC_KEYS = frozenset({"command", "weight"})
VARIANT_KEYS = frozenset({"description", "agent", "timeout", "sandbox"})
#: Keys every backend understands; a backend adds its own through ``validate_settings``.
COMMON_AGENT_KEYS = frozenset({"backend", "model"})
COMMAND_AGENT_KEYS = COMMON_AGENT_KEYS | {"run"}


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
    pass_env: tuple[str, ...] = ()  # environment variables the scoring run may see besides the basics


@dataclasses.dataclass(frozen=True)
class SandboxSpec:
    mode: str = "auto"  # auto | bwrap | none
    writable: tuple[str, ...] = ()  # more paths agents may write (an agent CLI's config folder)
    scoring_network: bool = False


@dataclasses.dataclass(frozen=True)
class WorktreeSpec:
    copy: tuple[str, ...] = ()  # untracked files copied from the main checkout into each worktree
    setup: str | None = None  # run once in each new worktree
    keep: str = "all"  # all | failed | none: which finished trials keep their worktree folder


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    name: str
    description: str
    agent: Mapping[str, Any]  # defaults merged with the variant's overrides
    timeout: float | None = None
    sandbox: SandboxSpec | None = None  # None: the experiment's


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """A validated ``variants.yaml``; values the file leaves out are None."""

    source: str  # file path, or a description of where the spec came from
    task: str | None
    variants: tuple[VariantSpec, ...]
    base: str | None = None
    timeout: float | None = None
    max_concurrent: int | None = None
    repeat: int | None = None
    max_cost_usd: float | None = None
    score: ScoreSpec = ScoreSpec()
    worktree: WorktreeSpec = WorktreeSpec()
    prompt_template: Path | None = None
    sandbox: SandboxSpec = SandboxSpec()


class SpecError(Exception):
    """Problems found in a spec; becomes a UsageError at the plugin's edge."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def is_safe_name(name: str) -> bool:
    """Whether ``name`` can be used as a path component and a git ref component."""
    return bool(_SAFE_NAME.fullmatch(name)) and ".." not in name and not name.endswith((".lock", "."))


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"20m"``, ``"1h30m"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        # YAML reads ``.inf`` and ``.nan`` as floats: neither is a time limit.
        if not math.isfinite(value) or value <= 0:
            raise ValueError(value)
        return float(value)
    text = str(value).strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip() or (len(parts) > 1 and "" in [u for _, u in parts]):
        raise ValueError(value)
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(value)
    return seconds


def load_spec(
    value: str, *, task: str | None = None, invocation_dir: Path, default_backend: str | None = None
) -> ExperimentSpec:
    """Read ``--variants`` (file, inline JSON or an integer) into a validated spec.

    ``task`` (``--explore-task``) takes precedence over the file's ``task``;
    ``default_backend`` (ini ``explore_agent``, or ``anthropic`` when a key is
    set) applies to variants whose agent names none.  Raises
    :class:`SpecError` with every problem found.
    """
    text = value.strip()
    short_form = False  # a number, or the seed's {name: description}: no place for agent settings
    if re.fullmatch(r"\d+", text):
        count = int(text)
        source = f"--variants {text}"
        if count < 1:
            raise SpecError(source, ["variants: expected at least 1 variant, got 0"])
        data: Any = {"variants": {f"run-{i}": "" for i in range(1, count + 1)}}
        base_dir = invocation_dir
        short_form = True
    elif text.startswith("{"):
        source = "--variants (inline JSON)"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(source, [f"not valid JSON: {exc}"]) from None
        if isinstance(data, dict) and "variants" not in data:
            data = {"variants": data}  # the seed's form: name -> description
            short_form = True
        base_dir = invocation_dir
    else:
        path = (invocation_dir / value).resolve()
        source = value
        if not path.is_file():
            raise SpecError(source, ["no such file (expected a YAML or JSON variants file, inline JSON or a number)"])
        data = _read_file(path, source)
        base_dir = path.parent
    if task is not None:
        if not isinstance(data, dict):
            data = {}
        data = {**data, "task": task}
    try:
        return validate(data, source=source, base_dir=base_dir, default_backend=default_backend)
    except SpecError as exc:
        if not short_form or default_backend != "command":
            raise
        # A number or {name: description} has nowhere to put the command agent's ``run``: say so once, and how.
        missing_run = re.compile(r"variants\.[^:]+\.agent\.run: ")
        problems = [p for p in exc.problems if not missing_run.match(p)]
        if len(problems) < len(exc.problems):
            problems.append(_SHORT_FORM_NO_RUN)
        raise SpecError(source, problems) from None


_SHORT_FORM_NO_RUN = (
    "agent.run: the command agent (ini explore_agent = command) needs the agent's shell command, "
    "which a number or {name: description} cannot give; write a variants file, or inline JSON with "
    '"task", "agent": {"backend": "command", "run": "..."} and "variants"'
)


def _read_file(path: Path, source: str) -> Any:
    import yaml  # imported here: only an experiment run pays for it

    text = path.read_text(encoding="utf-8")
    duplicates: list[str] = []

    def no_duplicates(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(f"duplicate key {key!r}")
            seen[key] = value
        return seen

    class Loader(yaml.SafeLoader):
        """SafeLoader that reports duplicate keys (with their line) instead of keeping the last."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            self.flatten_mapping(node)
            seen: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    duplicates.append(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
                seen[key] = self.construct_object(value_node, deep=deep)
            return seen

    try:
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=no_duplicates)
        else:
            data = yaml.load(text, Loader=Loader)
    except yaml.MarkedYAMLError as exc:
        # str(exc) quotes the text as "<unicode string>" over several lines: say where in the file instead.
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f" ({exc.context} at line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else ""
        raise SpecError(source, [f"{where}not valid YAML: {exc.problem}{context}"]) from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(source, [f"cannot be parsed: {exc}"]) from None
    if duplicates:
        raise SpecError(source, [f"{d} (each variant and setting may appear once)" for d in duplicates])
    return data


def validate(data: Any, *, source: str, base_dir: Path, default_backend: str | None = None) -> ExperimentSpec:
    """Turn parsed data into an :class:`ExperimentSpec`, or raise :class:`SpecError`."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise SpecError(source, [f"expected a mapping with 'task' and 'variants', got {_kind(data)}"])
    problems.extend(unknown_keys(data, TOP_KEYS, ""))

    task = data.get("task")
    if task is None or (isinstance(task, str) and not task.strip()):
        problems.append("task: missing; say what every variant must do (or pass --explore-task)")
        task = None
    elif not isinstance(task, str):
        problems.append(f"task: expected text, got {_kind(task)}")
        task = None

    base = _optional(data, "base", str, "a commit-ish such as HEAD or main", "", problems)
    timeout = _duration(data, "timeout", "", problems)
    max_concurrent = _positive_int(data, "max_concurrent", "", problems)
    repeat = _positive_int(data, "repeat", "", problems)
    max_cost = _optional(data, "max_cost_usd", (int, float), "an amount in US dollars", "", problems)
    if max_cost is not None and max_cost <= 0:
        problems.append(f"max_cost_usd: expected an amount in US dollars above 0, got {max_cost}")
    defaults = data.get("agent", {})
    if not isinstance(defaults, dict):
        problems.append(f"agent: expected a mapping of agent settings, got {_kind(defaults)}")
        defaults = {}
    score = _score(data.get("score", {}), problems)
    worktree = _worktree(data.get("worktree", {}), problems)
    sandbox = _sandbox(data.get("sandbox", "auto"), SandboxSpec(), "sandbox", problems)
    template = _optional(data, "prompt_template", str, "a path to a jinja2 template", "", problems)
    template_path = (base_dir / template).resolve() if template else None
    if template_path is not None and not template_path.is_file():
        problems.append(f"prompt_template: no such file: {template_path}")

    if default_backend is not None:
        defaults = {"backend": default_backend, **defaults}
    variants = _variants(data.get("variants"), defaults, problems, sandbox)
    if all(backend_keys(v.agent.get("backend")) is not None for v in variants):
        known = COMMAND_AGENT_KEYS.union(*(backend_keys(b) or () for b in BACKEND_VALIDATORS))
        problems.extend(unknown_keys(defaults, known, "agent."))
    if problems:
        raise SpecError(source, problems)
    return ExperimentSpec(
        source=source,
        task=task,
        variants=tuple(variants),
        base=base,
        timeout=timeout,
        max_concurrent=max_concurrent,
        repeat=repeat,
        max_cost_usd=float(max_cost) if max_cost is not None else None,
        score=score,
        worktree=worktree,
        prompt_template=template_path,
        sandbox=sandbox,
    )


def _variants(raw: Any, defaults: dict[str, Any], problems: list[str], sandbox: SandboxSpec) -> list[VariantSpec]:
    if raw is None or raw == {} or raw == []:
        problems.append("variants: empty; expected at least one variant (name: description)")
        return []
    if isinstance(raw, list):
        # A list of names is accepted as "name: no extra description".
        if not all(isinstance(n, str) for n in raw):
            problems.append("variants: expected a mapping of name -> description or settings")
            return []
        seen = [n for i, n in enumerate(raw) if n in raw[:i]]
        for name in seen:
            problems.append(f"variants.{name}: duplicate variant name")
        raw = {n: "" for n in raw}
    if not isinstance(raw, dict):
        problems.append(f"variants: expected a mapping of name -> description or settings, got {_kind(raw)}")
        return []
    variants = []
    lowered: dict[str, str] = {}
    for name, body in raw.items():
        where = f"variants.{name}"
        name = str(name)
        if name in RESERVED_NAMES:
            problems.append(f"{where}: the name {name!r} is reserved by the plugin; choose another")
            continue
        if not is_safe_name(name):
            problems.append(
                f"{where}: unsafe name {name!r}; names are used in paths and git refs: "
                "letters, digits, '.', '_' and '-', not starting with '.' or '-', no '..'"
            )
            continue
        if name.lower() in lowered:
            problems.append(
                f"{where}: duplicate of variant {lowered[name.lower()]!r} (names must differ in more than case)"
            )
            continue
        lowered[name.lower()] = name
        if body is None:
            body = ""
        if isinstance(body, str):
            body = {"description": body}
        if not isinstance(body, dict):
            problems.append(f"{where}: expected a description or a mapping with 'description', got {_kind(body)}")
            continue
        problems.extend(unknown_keys(body, VARIANT_KEYS, where + "."))
        description = body.get("description", "")
        if not isinstance(description, str):
            problems.append(f"{where}.description: expected text, got {_kind(description)}")
            description = ""
        override = body.get("agent", {})
        if not isinstance(override, dict):
            problems.append(f"{where}.agent: expected a mapping of agent settings, got {_kind(override)}")
            override = {}
        # A default meant for another backend (say anthropic's max_turns) does not reach this one.
        keys = backend_keys(override.get("backend", defaults.get("backend")))
        agent = {**{k: v for k, v in defaults.items() if keys is None or k in keys}, **override}
        _check_agent(agent, where + ".agent", problems)
        variants.append(
            VariantSpec(
                name=name,
                description=description,
                agent=agent,
                timeout=_duration(body, "timeout", where + ".", problems),
                sandbox=_sandbox(body["sandbox"], sandbox, where + ".sandbox", problems) if "sandbox" in body else None,
            )
        )
    return variants


def _check_agent(agent: dict[str, Any], where: str, problems: list[str]) -> None:
    """Check the settings the built-in backends know; plugin backends check their own."""
    backend = agent.get("backend")
    if backend is None:
        problems.append(
            f"{where}.backend: no agent chosen; set agent.backend in the variants file "
            "('command' with a 'run' command, or 'anthropic'), the ini key explore_agent, "
            "or ANTHROPIC_API_KEY for the built-in agent"
        )
        return
    if not isinstance(backend, str):
        problems.append(
            f"{where}.backend: expected a backend name such as 'anthropic' or 'command', got {_kind(backend)}"
        )
        return
    if backend == "command":
        problems.extend(unknown_keys(agent, COMMAND_AGENT_KEYS, where + "."))
        run = agent.get("run")
        if not isinstance(run, str) or not run.strip():
            problems.append(
                f'{where}.run: expected the agent\'s shell command (e.g. "claude -p {{prompt}}"), got {_kind(run)}'
            )
    elif backend in BACKEND_VALIDATORS:
        problems.extend(BACKEND_VALIDATORS[backend](agent, where))
    if "model" in agent and not isinstance(agent["model"], str):
        problems.append(f"{where}.model: expected a model name, got {_kind(agent['model'])}")


def backend_keys(backend: Any) -> frozenset[str] | None:
    """The agent settings a built-in backend understands; None for a plugin's backend (any key)."""
    if backend == "command":
        return COMMAND_AGENT_KEYS
    if backend == "anthropic":
        from .anthropic_agent import SETTING_KEYS

        return frozenset(SETTING_KEYS)
    if backend == "claude-code":
        from .claude_code_agent import SETTING_KEYS as CLAUDE_CODE_KEYS

        return frozenset(CLAUDE_CODE_KEYS)
    return None


def _anthropic_problems(agent: Mapping[str, Any], where: str) -> list[str]:
    from .anthropic_agent import validate_settings

    return validate_settings(agent, where)


def _claude_code_problems(agent: Mapping[str, Any], where: str) -> list[str]:
    from .claude_code_agent import validate_settings

    return validate_settings(agent, where)


BACKEND_VALIDATORS = {"anthropic": _anthropic_problems, "claude-code": _claude_code_problems}


def _score(raw: Any, problems: list[str]) -> ScoreSpec:
    if not isinstance(raw, dict):
        problems.append(f"score: expected a mapping (command, setup, holdout, metrics, weights), got {_kind(raw)}")
        return ScoreSpec()
    problems.extend(unknown_keys(raw, SCORE_KEYS, "score."))
    command = _optional(raw, "command", str, "a shell command", "score.", problems)
    setup = _optional(raw, "setup", str, "a shell command", "score.", problems)
    junit = _optional(raw, "junit", str, "a path to a junit XML file", "score.", problems)
    holdout = _paths(raw, "holdout", "score.", problems)
    metrics: dict[str, MetricSpec] = {}
    raw_metrics = raw.get("metrics") or {}
    if not isinstance(raw_metrics, dict):
        problems.append(f"score.metrics: expected a mapping of name -> {{command, weight}}, got {_kind(raw_metrics)}")
        raw_metrics = {}
    for name, body in raw_metrics.items():
        where = f"score.metrics.{name}"
        if isinstance(body, str):
            body = {"command": body}
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            problems.append(f'{where}: expected {{command: "...", weight: 0.5}} or a command, got {_kind(body)}')
            continue
        problems.extend(unknown_keys(body, METRIC_KEYS, where + "."))
        weight = body.get("weight", 0.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            problems.append(f"{where}.weight: expected a number, got {_kind(weight)}")
            weight = 0.0
        metrics[str(name)] = MetricSpec(body["command"], float(weight))
    weights: dict[str, float] = {}
    raw_weights = raw.get("weights") or {}
    if not isinstance(raw_weights, dict):
        problems.append(f"score.weights: expected a mapping of metric -> weight, got {_kind(raw_weights)}")
        raw_weights = {}
    for name, weight in raw_weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            problems.append(f"score.weights.{name}: expected a number, got {_kind(weight)}")
        else:
            weights[str(name)] = float(weight)
    return ScoreSpec(
        command=command,
        setup=setup,
        holdout=holdout,
        junit=junit,
        timeout=_duration(raw, "timeout", "score.", problems),
        metrics=metrics,
        weights=weights,
        baseline_runs=_positive_int(raw, "baseline_runs", "score.", problems) or 2,
        protect=_paths(raw, "protect", "score.", problems),
        protect_mode=_choice(raw, "protect_mode", ("flag", "fail"), "score.", problems) or "flag",
        pass_env=_names(raw, "pass_env", "score.", problems),
    )


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...], prefix: str, problems: list[str]) -> str | None:
    value = data.get(key)
    if value is not None and value not in choices:
        expected = " or ".join(repr(c) for c in choices)
        problems.append(f"{prefix}{key}: expected {expected}, got {value!r}")
        return None
    return value


def _names(data: dict[str, Any], key: str, prefix: str, problems: list[str]) -> tuple[str, ...]:
    value = data.get(key) or ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) for v in value
    ):
        problems.append(f"{prefix}{key}: expected a list of environment variable names, got {value!r}")
        return ()
    return tuple(value)


def _sandbox(raw: Any, default: SandboxSpec, where: str, problems: list[str]) -> SandboxSpec:
    """``sandbox: auto`` (a mode) or ``{mode, writable, scoring_network}``, on top of ``default``."""
    if isinstance(raw, str):
        raw = {"mode": raw}
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected 'auto', 'bwrap', 'none' or a mapping (mode, writable), got {_kind(raw)}")
        return default
    problems.extend(unknown_keys(raw, SANDBOX_KEYS, where + "."))
    network = raw.get("scoring_network", default.scoring_network)
    if not isinstance(network, bool):
        problems.append(f"{where}.scoring_network: expected true or false, got {_kind(network)}")
        network = default.scoring_network
    writable = _paths_anywhere(raw, "writable", where + ".", problems)
    return SandboxSpec(
        mode=_choice(raw, "mode", SANDBOX_MODES, where + ".", problems) or default.mode,
        writable=writable or default.writable,
        scoring_network=network,
    )


def _paths_anywhere(data: dict[str, Any], key: str, prefix: str, problems: list[str]) -> tuple[str, ...]:
    value = data.get(key) or ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        problems.append(f"{prefix}{key}: expected a path or a list of paths, got {_kind(value)}")
        return ()
    return tuple(value)


def _worktree(raw: Any, problems: list[str]) -> WorktreeSpec:
    if not isinstance(raw, dict):
        problems.append(f"worktree: expected a mapping (copy, setup, keep), got {_kind(raw)}")
        return WorktreeSpec()
    problems.extend(unknown_keys(raw, WORKTREE_KEYS, "worktree."))
    return WorktreeSpec(
        copy=_paths(raw, "copy", "worktree.", problems),
        setup=_optional(raw, "setup", str, "a shell command", "worktree.", problems),
        keep=_choice(raw, "keep", KEEP_CHOICES, "worktree.", problems) or "all",
    )


def _paths(data: dict[str, Any], key: str, prefix: str, problems: list[str]) -> tuple[str, ...]:
    """A path (or glob) or a list of them, each inside the repository."""
    value = data.get(key) or ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        problems.append(f"{prefix}{key}: expected a path or a list of paths, got {_kind(value)}")
        return ()
    for path in value:
        if Path(path).is_absolute() or ".." in Path(path).parts:
            problems.append(f"{prefix}{key}: expected a path inside the repository, got {path!r}")
    return tuple(value)


def _positive_int(data: dict[str, Any], key: str, prefix: str, problems: list[str]) -> int | None:
    value = _optional(data, key, int, "a whole number >= 1", prefix, problems)
    if value is not None and value < 1:
        problems.append(f"{prefix}{key}: expected a whole number >= 1, got {value}")
        return None
    return value


def unknown_keys(data: Mapping[str, Any], known: Iterable[str], prefix: str) -> list[str]:
    """One problem per key of ``data`` not in ``known``, suggesting the nearest known key."""
    known = sorted(known)
    problems = []
    for key in data:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; expected one of {', '.join(known)}"
            problems.append(f"{prefix}{key}: unknown key{hint}")
    return problems


def _optional(
    data: dict[str, Any], key: str, kind: type | tuple[type, ...], expected: str, prefix: str, problems: list[str]
) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        problems.append(f"{prefix}{key}: expected {expected}, got {_kind(value)}")
        return None
    return value


def _duration(data: dict[str, Any], key: str, prefix: str, problems: list[str]) -> float | None:
    if data.get(key) is None:
        return None
    try:
        return parse_duration(data[key])
    except ValueError:
        problems.append(f"{prefix}{key}: expected a duration such as 90, '90s', '20m' or '1h', got {data[key]!r}")
        return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bool, int, float)):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


def variant_hash(spec: ExperimentSpec, variant: VariantSpec, extra: Mapping[str, Any]) -> str:
    """A stable fingerprint of everything that decides a variant's result.

    ``extra`` carries the resolved settings (base commit, score command, ...)
    so that a change to any of them invalidates the saved result.
    """
    payload = {
        "task": spec.task,
        "variant": dataclasses.asdict(variant),
        "score": dataclasses.asdict(spec.score),
        "template": spec.prompt_template.read_text() if spec.prompt_template else None,
        **extra,
    }
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
