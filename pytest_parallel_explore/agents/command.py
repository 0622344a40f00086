"""The command backend: ``agent: {backend: command, run: "..."}`` runs any CLI or script in the worktree."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

from ..config.checks import describe
from ..isolation.procs import clean_env, expand, run_owned
from ..model.record import AgentStats
from .base import AgentBackend, AgentOutcome, AgentTask


@dataclasses.dataclass(frozen=True)
class CommandAgent(AgentBackend):
    """Any command-line agent: ``agent: {backend: command, run: "..."}``.

    The command is a shell string; ``{prompt}``, ``{prompt_file}``,
    ``{worktree}``, ``{variant}``, ``{experiment}``, ``{trial}`` and
    ``{python}`` are replaced by shell-quoted values, which are also in the
    ``EXPLORE_*`` environment variables; the prompt is on standard input too.
    Other braces are left alone, so shell and awk syntax keeps working.
    """

    run_template: str

    setting_keys: ClassVar[frozenset[str]] = frozenset({"run"})

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any], where: str) -> list[str]:
        problems = super().validate_settings(settings, where)
        run = settings.get("run")
        if not isinstance(run, str) or not run.strip():
            problems.append(
                f'{where}.run: expected the agent\'s shell command (e.g. "claude -p {{prompt}}"), got {describe(run)}'
            )
        return problems

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CommandAgent:
        return cls(str(settings["run"]))

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

    def programs(self) -> tuple[str, ...]:
        return (self.run_template,)

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
        if finished.limit is not None:
            return AgentOutcome(stats, f"limit: {finished.limit}")
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
