"""The Claude Code backend: ``agent: {backend: claude-code}`` runs the ``claude`` CLI headless.

``claude -p --output-format stream-json --verbose`` reads the prompt on
standard input, works in the worktree and prints its conversation as JSON
events, read by :mod:`.claude_stream` into the trial's stats, failure and
transcript.  What the CLI does not do as a user would expect, and what this
backend does about it:

- ``allowed_tools`` restricts the tools (``--tools``, by the rules' tool
  names) and pre-approves the rules (``--allowedTools``, which alone only
  approves).
- ``thinking``: current models think adaptively whatever ``MAX_THINKING_TOKENS``
  says, so a token budget is accepted only for the models that take one
  (:data:`.base.BUDGET_MODELS`); ``effort`` sets adaptive thinking's effort, and 0
  switches thinking off (``CLAUDE_CODE_DISABLE_THINKING``).
- ``bypassPermissions`` is refused as root unless ``IS_SANDBOX`` is set: as
  root (CI containers) it is set, since the user asked for that mode.
- A 401/403 is retried by the CLI for minutes: the run is stopped at the
  first such retry, and at the fourth of a server error or a failed
  connection.  Tool calls the CLI refused (``permission_denials``) flag the
  trial.
- ``max_cost_usd`` is ``--max-budget-usd``.

Claude Code needs its own credentials, so unlike the built-in agent's
commands its environment keeps API keys; a ``claude login`` session is
copied into the trial's private config folder (``CLAUDE_CONFIG_DIR``) for the
run.  Non-essential traffic (telemetry, auto-update) is switched off.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from ..config.checks import is_number, positive_int_problem, unknown_keys
from . import claude_stream
from .base import AgentOutcome, AgentTask, takes_thinking_budget, thinking_problem
from .cli import CliAgent, cli_problems

SETTING_KEYS = (
    "backend",
    "model",
    "thinking",
    "effort",
    "permission_mode",
    "allowed_tools",
    "max_turns",
    "max_cost_usd",
    "prices",
    "executable",
)
#: ``--permission-mode`` values; in print mode nobody is asked, so whatever is not
#: allowed (by the mode or by ``allowed_tools``) is refused.
PERMISSION_MODES = ("acceptEdits", "bypassPermissions", "default", "dontAsk", "plan")
EFFORTS = ("low", "medium", "high", "xhigh", "max")


def validate_settings(settings: Mapping[str, Any], where: str) -> list[str]:
    """Problems with a ``claude-code`` agent mapping, each naming its key path."""
    problems = unknown_keys(settings, SETTING_KEYS, where + ".")
    for problem in (thinking_problem(settings, where), positive_int_problem(settings, "max_turns", where)):
        if problem:
            problems.append(problem)
    thinking, model = settings.get("thinking", "adaptive"), settings.get("model")
    if thinking not in ("adaptive", 0) and not (isinstance(model, str) and takes_thinking_budget(model)):
        problems.append(
            f"{where}.thinking: Claude Code thinks adaptively on {model or 'its default model'} and ignores "
            f"a token budget ({thinking!r}); use thinking: adaptive with effort: {' | '.join(EFFORTS)}, "
            "or 0 to switch thinking off"
        )
    for key, allowed in (("permission_mode", PERMISSION_MODES), ("effort", EFFORTS)):
        if key in settings and settings[key] not in allowed:
            problems.append(f"{where}.{key}: expected one of {', '.join(allowed)}, got {settings[key]!r}")
    tools = settings.get("allowed_tools", [])
    if not (isinstance(tools, str) or (isinstance(tools, list) and all(isinstance(t, str) for t in tools))):
        problems.append(
            f"{where}.allowed_tools: expected a list of Claude Code tool rules "
            f'such as ["Read", "Edit", "Bash(python -m pytest:*)"], got {tools!r}'
        )
    cost = settings.get("max_cost_usd", 1.0)
    if not (is_number(cost) and cost > 0):
        problems.append(f"{where}.max_cost_usd: expected a number of dollars > 0, got {cost!r}")
    return problems + cli_problems(settings, where, "claude")


@dataclasses.dataclass(frozen=True)
class ClaudeCodeAgent(CliAgent):
    """``agent: {backend: claude-code, ...}``; build it with :meth:`from_settings`."""

    setting_keys: ClassVar[frozenset[str]] = frozenset(SETTING_KEYS)
    cli: ClassVar[str] = "claude"
    install: ClassVar[str] = "npm install -g @anthropic-ai/claude-code"
    home_variable: ClassVar[str] = "CLAUDE_CONFIG_DIR"
    login_files: ClassVar[tuple[tuple[str, str], ...]] = (("~/.claude", ".credentials.json"),)

    executable: str = "claude"
    model: str | None = None  # None: Claude Code's own default
    thinking: str | int = "adaptive"
    effort: str | None = None
    permission_mode: str = "acceptEdits"
    allowed_tools: tuple[str, ...] = ()
    max_turns: int | None = None
    max_cost_usd: float | None = None
    prices: Mapping[str, Mapping[str, float]] | None = None

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any], where: str) -> list[str]:
        return validate_settings(settings, where)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ClaudeCodeAgent:
        """The agent for a variant's merged ``agent:`` mapping, already validated."""
        values = cls.field_values(settings)
        tools = values.get("allowed_tools", ())
        values["allowed_tools"] = (tools,) if isinstance(tools, str) else tuple(tools)
        return cls(**values)

    def argv(self) -> list[str]:
        argv = [self.executable, "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--permission-mode", self.permission_mode]
        if self.model:
            argv += ["--model", self.model]
        if self.allowed_tools:
            names = dict.fromkeys(rule.split("(", 1)[0].strip() for rule in self.allowed_tools)
            argv += ["--tools", ",".join(names), "--allowedTools", ",".join(self.allowed_tools)]
        if self.max_turns:
            argv += ["--max-turns", str(self.max_turns)]
        if self.max_cost_usd:
            argv += ["--max-budget-usd", f"{self.max_cost_usd:g}"]
        if self.effort:
            argv += ["--effort", self.effort]
        return argv

    def env(self) -> dict[str, str]:
        env = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        if self.thinking == 0:
            env["CLAUDE_CODE_DISABLE_THINKING"] = "1"
        elif self.thinking != "adaptive":
            env["MAX_THINKING_TOKENS"] = str(self.thinking)
        if self.permission_mode == "bypassPermissions" and os.geteuid() == 0:
            env["IS_SANDBOX"] = "1"  # else: "cannot be used with root/sudo privileges"
        return env

    def run(self, task: AgentTask) -> AgentOutcome:
        run = self.run_cli(task, self.argv(), self.env(), watch=claude_stream.doomed_retry)
        result = claude_stream.result_of(run.events)
        stats = claude_stream.stats_of(run.events, self.model, self.prices)
        outcome = AgentOutcome(stats, transcript=claude_stream.transcript_of(run.events))
        denied = claude_stream.denials_of(result, self.permission_mode)
        if denied:
            outcome.flags.append(denied)
        if self.ended_early(run, task, outcome):
            return outcome
        outcome.failure = claude_stream.failure_of(result, self.max_turns, self.max_cost_usd)
        if outcome.failure is None and result is None:
            outcome.failure = f"claude exited with status {run.finished.returncode} without a result ({task.log_path})"
        elif outcome.failure is None and run.finished.returncode:
            outcome.failure = f"claude exited with status {run.finished.returncode}"
        return outcome
