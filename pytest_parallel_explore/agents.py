"""The agent interface and the command-line agent backend.

An agent edits a worktree to carry out a prompt.  Backends are chosen by the
``pytest_explore_make_agent`` hook; the plugin's own implementation knows
``command`` (any CLI or script), ``anthropic`` and ``claude-code``.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from .procs import clean_env, expand, run_owned
from .record import AgentStats
from .sandbox import Sandbox
from .spec import VariantSpec


class AgentUnavailable(Exception):
    """An agent cannot run at all (missing key or executable): raised before any work starts."""


@dataclasses.dataclass(frozen=True)
class AgentTask:
    """Everything an agent is given for one trial."""

    experiment: str
    trial: str
    variant: str
    settings: Mapping[str, Any]  # the variant's merged ``agent:`` mapping
    prompt: str
    prompt_file: Path
    worktree: Path
    log_path: Path  # the agent's own log / transcript
    timeout: float  # seconds the agent may run
    env: Mapping[str, str]  # EXPLORE_* variables for anything the agent starts
    report: Callable[[AgentStats], None] = lambda stats: None  # running totals, for progress
    sandbox: Sandbox | None = None  # where the agent's commands run (bubblewrap), or None


@dataclasses.dataclass
class AgentOutcome:
    stats: AgentStats
    failure: str | None = None  # why the agent failed; None when it finished normally
    timed_out: bool = False


class Agent(Protocol):
    """What a backend returned by ``pytest_explore_make_agent`` must provide."""

    def preflight(self) -> None:
        """Raise :class:`AgentUnavailable` if the agent cannot run at all.

        Called in the controller before any worktree is made.
        """

    def run(self, task: AgentTask) -> AgentOutcome:
        """Edit ``task.worktree``; never raise for the agent's own failures."""


@dataclasses.dataclass(frozen=True)
class CommandAgent:
    """Any command-line agent: ``agent: {backend: command, run: "..."}``.

    The command is a shell string; ``{prompt}``, ``{prompt_file}``,
    ``{worktree}``, ``{variant}``, ``{experiment}``, ``{trial}`` and
    ``{python}`` are replaced by shell-quoted values, which are also in the
    ``EXPLORE_*`` environment variables; the prompt is on standard input too.
    Other braces are left alone, so shell and awk syntax keeps working.
    """

    run_template: str

    def preflight(self) -> None:
        """A missing executable fails its own trial (exit 127), not the whole run."""

    def command_for(self, task: AgentTask) -> str:
        values = {
            "prompt": task.prompt,
            "prompt_file": str(task.prompt_file),
            "worktree": str(task.worktree),
            "variant": task.variant,
            "experiment": task.experiment,
            "trial": task.trial,
            "python": sys.executable,
        }
        return expand(self.run_template, values)

    def run(self, task: AgentTask) -> AgentOutcome:
        command = self.command_for(task)
        task.log_path.parent.mkdir(parents=True, exist_ok=True)
        with task.log_path.open("a", encoding="utf-8") as log:
            log.write(f"$ {command}\n")
        finished = run_owned(
            command,
            cwd=task.worktree,
            env=clean_env(task.env),
            timeout=task.timeout,
            stdin=task.prompt,
            output=task.log_path,
            sandbox=task.sandbox,
        )
        stats = AgentStats(
            backend="command",
            model=task.settings.get("model"),
            exit_code=finished.returncode,
            seconds=round(finished.seconds, 3),
        )
        if finished.timed_out:
            return AgentOutcome(stats, f"agent timed out after {task.timeout:g}s", timed_out=True)
        if finished.returncode == 127:
            return AgentOutcome(stats, f"agent command not found: {_first_word(command)}")
        if finished.returncode:
            return AgentOutcome(stats, f"agent exited with status {finished.returncode}")
        return AgentOutcome(stats)


def _first_word(command: str) -> str:
    try:
        return shlex.split(command)[0]
    except (ValueError, IndexError):
        return command


@pytest.hookimpl(trylast=True)
def pytest_explore_make_agent(config: pytest.Config, variant: VariantSpec) -> Agent | None:
    """The built-in backends; plugins and ``conftest.py`` files can add others."""
    settings = variant.agent
    backend = settings.get("backend")
    if backend == "command":
        return CommandAgent(str(settings["run"]))
    if backend == "anthropic":
        from .anthropic_agent import AnthropicAgent

        return AnthropicAgent.from_settings(settings)
    if backend == "claude-code":
        from .claude_code_agent import ClaudeCodeAgent

        return ClaudeCodeAgent.from_settings(settings)
    return None
