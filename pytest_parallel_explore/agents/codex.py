"""The Codex backend: ``agent: {backend: codex}`` runs OpenAI's ``codex exec`` headless.

``codex exec --json -`` reads the prompt on standard input, works in the
worktree and prints JSON events (see :mod:`.codex_events`).  Settings:
``model``; ``reasoning_effort`` (``model_reasoning_effort``);
``sandbox_mode``, Codex's own sandbox for the commands it runs
(``workspace-write`` by default; inside the plugin's bubblewrap sandbox,
where Codex's cannot nest, the plugin's is the sandbox and Codex's is
bypassed unless ``read-only`` was asked for); ``max_turns``, which Codex
lacks, enforced by stopping it after that many steps; ``config``, Codex
``-c key=value`` overrides (a model provider, say); ``prices`` and
``executable``.  Its private ``CODEX_HOME`` is the trial's state folder, with
the user's ``auth.json`` and ``config.toml`` copied in for the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from ..config.checks import positive_int_problem, unknown_keys
from . import codex_events
from .base import AgentOutcome, AgentTask
from .cli import CliAgent, cli_problems

SETTING_KEYS = (
    "backend",
    "model",
    "reasoning_effort",
    "sandbox_mode",
    "max_turns",
    "config",
    "prices",
    "executable",
)
SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")
EFFORTS = ("minimal", "low", "medium", "high", "xhigh")
_CODEX_HOME = os.environ.get("CODEX_HOME", "~/.codex")


def validate_settings(settings: Mapping[str, Any], where: str) -> list[str]:
    """Problems with a ``codex`` agent mapping, each naming its key path."""
    problems = unknown_keys(settings, SETTING_KEYS, where + ".")
    problem = positive_int_problem(settings, "max_turns", where)
    if problem:
        problems.append(problem)
    for key, allowed in (("sandbox_mode", SANDBOX_MODES), ("reasoning_effort", EFFORTS)):
        if key in settings and settings[key] not in allowed:
            problems.append(f"{where}.{key}: expected one of {', '.join(allowed)}, got {settings[key]!r}")
    config = settings.get("config", {})
    if not (isinstance(config, dict) and all(isinstance(k, str) for k in config)):
        problems.append(
            f"{where}.config: expected a mapping of Codex config keys to values "
            f'(e.g. {{model_provider: "mine"}}), got {config!r}'
        )
    return problems + cli_problems(settings, where, "codex")


@dataclasses.dataclass(frozen=True)
class CodexAgent(CliAgent):
    """``agent: {backend: codex, ...}``; build it with :meth:`from_settings`."""

    setting_keys: ClassVar[frozenset[str]] = frozenset(SETTING_KEYS)
    cli: ClassVar[str] = "codex"
    install: ClassVar[str] = "npm install -g @openai/codex"
    home_variable: ClassVar[str] = "CODEX_HOME"
    login_files: ClassVar[tuple[tuple[str, str], ...]] = ((_CODEX_HOME, "auth.json"), (_CODEX_HOME, "config.toml"))

    executable: str = "codex"
    model: str | None = None
    reasoning_effort: str | None = None
    sandbox_mode: str = "workspace-write"
    max_turns: int | None = None
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prices: Mapping[str, Mapping[str, float]] | None = None

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any], where: str) -> list[str]:
        return validate_settings(settings, where)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CodexAgent:
        return cls(**cls.field_values(settings))

    def argv(self, sandboxed: bool) -> list[str]:
        """The command; ``sandboxed``: inside the plugin's sandbox, where Codex's own cannot run."""
        argv = [self.executable, "exec", "--json", "--skip-git-repo-check", "--color", "never"]
        if self.model:
            argv += ["--model", self.model]
        if sandboxed and self.sandbox_mode != "read-only":
            argv.append("--dangerously-bypass-approvals-and-sandbox")
        else:
            argv += ["--sandbox", self.sandbox_mode]
        config = dict(self.config)
        if self.reasoning_effort:
            config["model_reasoning_effort"] = self.reasoning_effort
        for key, value in config.items():
            argv += ["-c", f"{key}={toml_value(value)}"]
        return [*argv, "-"]

    def run(self, task: AgentTask) -> AgentOutcome:
        sandboxed = task.sandbox is not None and task.sandbox.isolated
        run = self.run_cli(task, self.argv(sandboxed), {}, watch=codex_events.Watch(self.max_turns))
        thread = next((str(e["thread_id"]) for e in run.events if e.get("type") == "thread.started"), None)
        items = codex_events.session_items(run.state, thread)
        model = self.model or codex_events.session_model(items)
        outcome = AgentOutcome(
            codex_events.stats_of(run.events, model, self.prices),
            transcript=codex_events.transcript_of(items, run.events),
        )
        refused = codex_events.refused_writes(items, self.sandbox_mode)
        if refused:
            outcome.flags.append(refused)
        if self.ended_early(run, task, outcome):
            return outcome
        outcome.failure = codex_events.failure_of(run.events)
        if outcome.failure is None and run.finished.returncode:
            outcome.failure = f"codex exited with status {run.finished.returncode}"
        return outcome


def toml_value(value: Any) -> str:
    """``value`` as a TOML value for ``codex -c key=value``: strings quoted, tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML value for {value!r}")
