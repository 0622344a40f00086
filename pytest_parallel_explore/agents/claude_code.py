"""The Claude Code backend: ``agent: {backend: claude-code}`` runs the ``claude`` CLI headless.

``claude -p --output-format json`` reads the prompt on standard input, works in
the worktree and prints one JSON result (``result``, ``subtype``, ``is_error``,
``num_turns``, ``total_cost_usd``, ``usage``, ``session_id``), which becomes the
trial's :class:`AgentStats`.  Claude Code takes no thinking flag: a token budget
goes in ``MAX_THINKING_TOKENS`` with adaptive thinking switched off
(``CLAUDE_CODE_DISABLE_ADAPTIVE_THINKING``), and ``adaptive`` is its default.
Claude Code needs its own credentials, so unlike the built-in agent's commands
its environment keeps API keys.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..config.checks import positive_int_problem, unknown_keys
from ..isolation.procs import clean_env, run_owned
from ..model.record import AgentStats
from .base import AgentBackend, AgentOutcome, AgentTask, AgentUnavailable, thinking_problem

SETTING_KEYS = ("backend", "model", "thinking", "permission_mode", "allowed_tools", "max_turns", "executable")
#: ``--permission-mode`` values; in print mode nobody is asked, so whatever is not
#: allowed (by the mode or by ``allowed_tools``) is refused.
PERMISSION_MODES = ("acceptEdits", "bypassPermissions", "default", "dontAsk", "plan")


def validate_settings(settings: Mapping[str, Any], where: str) -> list[str]:
    """Problems with a ``claude-code`` agent mapping, each naming its key path."""
    problems = unknown_keys(settings, SETTING_KEYS, where + ".")
    for problem in (thinking_problem(settings, where), positive_int_problem(settings, "max_turns", where)):
        if problem:
            problems.append(problem)
    mode = settings.get("permission_mode", "acceptEdits")
    if mode not in PERMISSION_MODES:
        problems.append(f"{where}.permission_mode: expected one of {', '.join(PERMISSION_MODES)}, got {mode!r}")
    tools = settings.get("allowed_tools", [])
    if not (isinstance(tools, str) or (isinstance(tools, list) and all(isinstance(t, str) for t in tools))):
        problems.append(
            f"{where}.allowed_tools: expected a list of Claude Code tool rules "
            f'such as ["Read", "Edit", "Bash(python -m pytest:*)"], got {tools!r}'
        )
    executable = settings.get("executable", "claude")
    if not (isinstance(executable, str) and executable.strip()):
        problems.append(f"{where}.executable: expected the claude command's name or path, got {executable!r}")
    return problems


@dataclasses.dataclass(frozen=True)
class ClaudeCodeAgent(AgentBackend):
    """``agent: {backend: claude-code, ...}``; build it with :meth:`from_settings`."""

    setting_keys: ClassVar[frozenset[str]] = frozenset(SETTING_KEYS)

    model: str | None = None  # None: Claude Code's own default
    thinking: str | int = "adaptive"
    permission_mode: str = "acceptEdits"
    allowed_tools: tuple[str, ...] = ()
    max_turns: int | None = None
    executable: str = "claude"

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

    def preflight(self) -> None:
        if shutil.which(self.executable) is None:
            raise AgentUnavailable(
                f"claude-code agent: {self.executable!r} is not on PATH; install Claude Code "
                "(npm install -g @anthropic-ai/claude-code), set the agent's executable setting, "
                "or choose another backend (anthropic or command)"
            )

    def argv(self) -> list[str]:
        argv = [self.executable, "-p", "--output-format", "json", "--permission-mode", self.permission_mode]
        if self.model:
            argv += ["--model", self.model]
        if self.allowed_tools:
            argv += ["--allowedTools", ",".join(self.allowed_tools)]
        if self.max_turns:
            argv += ["--max-turns", str(self.max_turns)]
        return argv

    def thinking_env(self) -> dict[str, str]:
        if self.thinking == "adaptive":
            return {}
        return {"CLAUDE_CODE_DISABLE_ADAPTIVE_THINKING": "1", "MAX_THINKING_TOKENS": str(self.thinking)}

    def run(self, task: AgentTask) -> AgentOutcome:
        argv = self.argv()
        task.log_path.parent.mkdir(parents=True, exist_ok=True)
        with task.log_path.open("ab") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            start = log.tell()
        finished = run_owned(
            argv,
            cwd=task.worktree,
            env=clean_env({**task.env, **self.thinking_env()}),
            timeout=task.timeout,
            stdin=task.prompt,
            output=task.log_path,  # the raw output stays in the log; the result is read back from there
            sandbox=task.sandbox,
        )
        with task.log_path.open("rb") as log:
            log.seek(start)
            output = log.read().decode(errors="replace")
        result = parse_result(output)
        stats = _stats(result or {}, self.model)
        stats.exit_code = finished.returncode
        stats.seconds = round(finished.seconds, 3)
        if finished.limit is not None:
            return AgentOutcome(stats, f"limit: {finished.limit}")
        if finished.timed_out:
            stats.stop_reason = "timeout"
            return AgentOutcome(stats, f"agent timed out after {task.timeout:g}s", timed_out=True)
        if finished.returncode == 127:
            return AgentOutcome(stats, f"agent command not found: {self.executable}")
        if result is None:
            return AgentOutcome(
                stats, f"claude exited with status {finished.returncode} without a JSON result (see {task.log_path})"
            )
        if result.get("is_error") or result.get("subtype") != "success":
            return AgentOutcome(stats, f"claude reported {result.get('subtype')}: {str(result.get('result'))[:300]}")
        if finished.returncode:
            return AgentOutcome(stats, f"claude exited with status {finished.returncode}")
        return AgentOutcome(stats)


def parse_result(output: str) -> dict[str, Any] | None:
    """The ``"type": "result"`` object in ``claude --output-format json`` output, if any.

    It is the whole output, or (with ``--verbose``) the last element of a list;
    lines around it that are not JSON (standard error) are ignored.
    """
    for text in [output, *reversed(output.splitlines())]:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        for item in reversed(data) if isinstance(data, list) else [data]:
            if isinstance(item, dict) and item.get("type") == "result":
                return item
    return None


def _stats(result: Mapping[str, Any], model: str | None) -> AgentStats:
    usage = result.get("usage") or {}
    models: Sequence[str] = list(result.get("modelUsage") or {})
    return AgentStats(
        backend="claude-code",
        model=model or (models[0] if models else None),
        turns=int(result.get("num_turns") or 0),
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
        cost_usd=float(result.get("total_cost_usd") or 0.0),
        stop_reason=result.get("subtype"),
        session_id=result.get("session_id"),
    )
