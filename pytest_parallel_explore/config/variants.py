"""Loading and validating an experiment's variants (``--variants``).

``--variants`` is a YAML or JSON file, inline JSON (``{"name": "description"}``
or a whole spec), or an integer N (N variants with the same task).  Everything
is checked before anything is created; all problems are reported together as
one :class:`pytest.UsageError` naming the file, the key path and what was
expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ..model.limits import Limits
from ..model.spec import ExperimentSpec, SandboxSpec, VariantSpec, is_safe_name
from .checks import describe, duration, optional, positive_int, unknown_keys
from .limits import parse_limits
from .reading import SpecError, VariantsInput, read_variants
from .sections import parse_repeat, parse_sandbox, parse_score, parse_worktree

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
        "limits",
    }
)
#: Trial names the plugin uses for itself.
RESERVED_NAMES = frozenset({"baseline"})
VARIANT_KEYS = frozenset({"description", "agent", "timeout", "sandbox", "limits"})


class BackendSettings(Protocol):
    """What the spec asks of a registered agent backend (see :class:`.agents.AgentBackend`)."""

    @classmethod
    def known_keys(cls) -> frozenset[str]: ...

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any], where: str) -> list[str]: ...


#: Backend name -> backend class: the registry :func:`.agents.agent_backends` builds.
Backends = Mapping[str, type[BackendSettings]]


def load_spec(
    value: str,
    *,
    task: str | None = None,
    invocation_dir: Path,
    default_backend: str | None = None,
    backends: Backends,
    read: VariantsInput | None = None,
) -> ExperimentSpec:
    """Read ``--variants`` (file, inline JSON or an integer) into a validated spec.

    ``task`` (``--explore-task``) takes precedence over the file's ``task``;
    ``default_backend`` (ini ``explore_agent``, or ``anthropic`` when a key is
    set) applies to variants whose agent names none; ``backends`` is the
    registry whose backends check their variants' settings; ``read``, what
    was read already (xdist's workers get the controller's).  Raises
    :class:`SpecError` with every problem found.
    """
    read = read or read_variants(value, invocation_dir)
    data = read.data
    if task is not None:
        if not isinstance(data, dict):
            data = {}
        data = {**data, "task": task}
    return validate(
        data,
        source=read.source,
        base_dir=read.base_dir,
        default_backend=default_backend,
        backends=backends,
        short_form=read.short_form,
    )


_SHORT_FORM_NO_RUN = (
    "agent.run: the command agent (ini explore_agent = command) needs the agent's shell command, "
    "which a number or {name: description} cannot give; write a variants file, or inline JSON with "
    '"task", "agent": {"backend": "command", "run": "..."} and "variants"'
)


def validate(
    data: Any,
    *,
    source: str,
    base_dir: Path,
    default_backend: str | None = None,
    backends: Backends,
    short_form: bool = False,
) -> ExperimentSpec:
    """Turn parsed data into an :class:`ExperimentSpec`, or raise :class:`SpecError`.

    ``short_form``: the data came from a number or ``{name: description}``,
    which have no place for the experiment's agent settings.
    """
    problems: list[str] = []
    if not isinstance(data, dict):
        raise SpecError(source, [f"expected a mapping with 'task' and 'variants', got {describe(data)}"])
    problems.extend(unknown_keys(data, TOP_KEYS, ""))

    task = data.get("task")
    if task is None or (isinstance(task, str) and not task.strip()):
        problems.append("task: missing; say what every variant must do (or pass --explore-task)")
        task = None
    elif not isinstance(task, str):
        problems.append(f"task: expected text, got {describe(task)}")
        task = None

    base = optional(data, "base", str, "a commit-ish such as HEAD or main", "", problems)
    timeout = duration(data, "timeout", "", problems)
    max_concurrent = positive_int(data, "max_concurrent", "", problems)
    repeat = parse_repeat(data.get("repeat"), problems)
    max_cost = optional(data, "max_cost_usd", (int, float), "an amount in US dollars", "", problems)
    if max_cost is not None and max_cost <= 0:
        problems.append(f"max_cost_usd: expected an amount in US dollars above 0, got {max_cost}")
    defaults = data.get("agent", {})
    if not isinstance(defaults, dict):
        problems.append(f"agent: expected a mapping of agent settings, got {describe(defaults)}")
        defaults = {}
    score = parse_score(data.get("score", {}), problems)
    worktree = parse_worktree(data.get("worktree", {}), problems)
    sandbox = parse_sandbox(data.get("sandbox", "auto"), SandboxSpec(), "sandbox", problems)
    limits = parse_limits(data.get("limits", {}), Limits(), "limits", problems)
    template = optional(data, "prompt_template", str, "a path to a jinja2 template", "", problems)
    template_path = (base_dir / template).resolve() if template else None
    template_text = None
    if template_path is not None and not template_path.is_file():
        problems.append(f"prompt_template: no such file: {template_path}")
    elif template_path is not None:
        from ..templating import template_problem  # here: jinja2 is imported only for a template of the user's

        try:  # read once: every trial's prompt is rendered from this text, whatever the file says later
            template_text = template_path.read_text(encoding="utf-8")
            problem = template_problem(template_text)
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
        if problem:
            problems.append(f"prompt_template: {template_path}: {problem}")

    if default_backend is not None:
        defaults = {"backend": default_backend, **defaults}
    variants = _variants(
        data.get("variants"), defaults, problems, sandbox, backends, short_form=short_form, limits=limits
    )
    if all(_backend(backends, v.agent.get("backend")) is not None for v in variants):
        known = frozenset[str]().union(*(backend.known_keys() for backend in backends.values()))
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
        prompt_template=template_text,
        sandbox=sandbox,
        limits=limits,
    )


def _variants(
    raw: Any,
    defaults: dict[str, Any],
    problems: list[str],
    sandbox: SandboxSpec,
    backends: Backends,
    *,
    short_form: bool,
    limits: Limits,
) -> list[VariantSpec]:
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
        problems.append(f"variants: expected a mapping of name -> description or settings, got {describe(raw)}")
        return []
    variants = []
    lowered: dict[str, str] = {}
    run_missing = False  # in the short form, where the command agent's run has no place
    no_backend: list[str] = []  # variants whose agent has no backend, from the file or a default
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
            problems.append(f"{where}: expected a description or a mapping with 'description', got {describe(body)}")
            continue
        problems.extend(unknown_keys(body, VARIANT_KEYS, where + "."))
        description = body.get("description", "")
        if not isinstance(description, str):
            problems.append(f"{where}.description: expected text, got {describe(description)}")
            description = ""
        override = body.get("agent", {})
        if not isinstance(override, dict):
            problems.append(f"{where}.agent: expected a mapping of agent settings, got {describe(override)}")
            override = {}
        # A default meant for another backend (say anthropic's max_turns) does not reach this one.
        backend = _backend(backends, override.get("backend", defaults.get("backend")))
        keys = backend.known_keys() if backend is not None else None  # a plugin's unregistered backend: any key
        agent = {**{k: v for k, v in defaults.items() if keys is None or k in keys}, **override}
        if short_form and agent.get("backend") == "command" and "run" not in agent:
            # Said once for the whole spec, with the way out, not once per variant; other keys are still checked.
            run_missing = True
            problems.extend(unknown_keys(agent, backends["command"].known_keys(), where + ".agent."))
        elif agent.get("backend") is None:
            no_backend.append(name)  # said once for them all below
        else:
            _check_agent(agent, where + ".agent", problems, backends)
        variants.append(
            VariantSpec(
                name=name,
                description=description,
                agent=agent,
                timeout=duration(body, "timeout", where + ".", problems),
                sandbox=parse_sandbox(body["sandbox"], sandbox, f"{where}.sandbox", problems)
                if "sandbox" in body
                else None,
                limits=parse_limits(body["limits"], limits, f"{where}.limits", problems) if "limits" in body else None,
            )
        )
    if run_missing:
        problems.append(_SHORT_FORM_NO_RUN)
    if no_backend:
        every = len(no_backend) > 1 and len(no_backend) == len(variants)
        where = "agent" if every else ", ".join(f"variants.{n}.agent" for n in no_backend)
        problems.append(
            f"{where}.backend: no agent chosen; set agent.backend in the variants file "
            "('command' with a 'run' command, or 'anthropic'), the ini key explore_agent, "
            "or ANTHROPIC_API_KEY for the built-in agent"
        )
    return variants


def _check_agent(agent: dict[str, Any], where: str, problems: list[str], backends: Backends) -> None:
    """Check the settings of a registered backend; a backend nothing registered is left to its plugin."""
    backend = agent.get("backend")
    if not isinstance(backend, str):
        problems.append(
            f"{where}.backend: expected a backend name such as 'anthropic' or 'command', got {describe(backend)}"
        )
        return
    if backend in backends:
        problems.extend(backends[backend].validate_settings(agent, where))
    if "model" in agent and not isinstance(agent["model"], str):
        problems.append(f"{where}.model: expected a model name, got {describe(agent['model'])}")


def _backend(backends: Backends, name: Any) -> type[BackendSettings] | None:
    """The registered backend called ``name``; None for a name nothing registered, or not a name at all."""
    return backends.get(name) if isinstance(name, str) else None
