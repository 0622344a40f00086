"""The built-in agent: a Messages API tool-use loop confined to the trial's worktree.

``agent: {backend: anthropic}``.  The model gets the task prompt and six tools
(list, read, write, edit, search, run a command) whose paths are all resolved
inside the worktree.  Choices worth knowing about:

* **Retries are ours.** The SDK client is built with ``max_retries=0`` and
  :meth:`_Session.create` retries 408/409/429/5xx/529 and connection errors with
  exponential backoff and jitter, honouring ``retry-after``.  Doing it here puts
  every retry in the transcript and bounds the waiting by the trial's time
  rather than by a retry count: overload never fails a trial while time remains.
  Which errors are retried, and for how long, is in :mod:`.retries`.
* **No streaming.** Each request carries an explicit timeout (the time left),
  which also lifts the SDK's refusal of long non-streaming requests; the
  transcript wants whole messages anyway.
* **Caching.** The tools and the system prompt carry ``cache_control`` and the
  request sets the top-level ``cache_control`` so the growing conversation is
  cached too.  The system prompt names no path, so concurrent trials of one
  model share the cached prefix.
* **Thinking.** ``adaptive`` (the default) where the model supports it, else a
  token budget; see :meth:`AnthropicAgent.thinking_budget`.  The settings and
  their checks are in :mod:`.settings`.
* **Confinement** covers the file tools: paths are resolved (symlinks
  followed) and refused unless they stay inside the worktree.  ``run_command``
  is a shell in the worktree, not a sandbox; its environment is an allow-list
  (:mod:`pytest_parallel_explore.isolation.environ`), so it lacks API keys and other secrets.  The
  tools and their rules are in :mod:`.tools`, the price table in
  :mod:`.pricing`.
* **Lazy SDK import.** ``anthropic`` takes most of a second to import, so it is
  imported only where a request is made; validating settings stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...config.checks import parse_duration
from ...isolation.environ import safe_env
from ...model.record import AgentStats
from ..base import AgentBackend, AgentOutcome, AgentTask, AgentUnavailable
from ..cli import read_events
from ..pricing import price_for
from .retries import api_failure, backoff, retry_after, retryable
from .schemas import TOOLS
from .settings import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_TURNS,
    DEFAULT_MODEL,
    SETTING_KEYS,
    supports_adaptive_thinking,
    validate_settings,
)
from .tools import ToolError, WorktreeTools
from .transcript import transcript_of

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import (
        Message,
        MessageParam,
        ThinkingConfigParam,
        ToolResultBlockParam,
        ToolUseBlock,
    )

# -- the agent ----------------------------------------------------------------

_SYSTEM_PROMPT = """\
You are a software engineer working alone in a git worktree of a project.
Use the tools to explore, change and test the code. Paths are relative to the worktree root; \
nothing outside the worktree can be read or written.
run_command runs a shell command in the worktree root, stops it after {timeout:g} seconds and \
truncates long output; it has no API keys.
Work in small verified steps: read before you edit, run the tests after changing code, and fix \
what fails.
When the task is done, reply with a short summary of what you changed and stop calling tools."""


@dataclasses.dataclass(frozen=True)
class AnthropicAgent(AgentBackend):
    """``agent: {backend: anthropic, ...}``; build it with :meth:`from_settings`."""

    setting_keys: ClassVar[frozenset[str]] = frozenset(SETTING_KEYS)

    model: str = DEFAULT_MODEL
    thinking: str | int = "adaptive"
    max_turns: int = DEFAULT_MAX_TURNS
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    prices: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    base_url: str | None = None  # None: ANTHROPIC_BASE_URL, else the SDK's default
    system: str | None = None  # replaces the built-in system prompt

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any], where: str) -> list[str]:
        return validate_settings(settings, where)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AnthropicAgent:
        """The agent for a variant's merged ``agent:`` mapping, already validated."""
        values = cls.field_values(settings)
        if "command_timeout" in values:
            values["command_timeout"] = parse_duration(values["command_timeout"])
        return cls(**values)

    def thinking_budget(self) -> int | None:
        """Thinking tokens per response: None for adaptive thinking, 0 for none.

        ``adaptive`` falls back to half of ``max_tokens`` on models that predate
        it, so one ``thinking: adaptive`` default serves variants on old and new models.
        """
        if self.thinking == "adaptive":
            return None if supports_adaptive_thinking(self.model) else (self.max_tokens or DEFAULT_MAX_TOKENS) // 2
        return int(self.thinking)

    def thinking_config(self) -> ThinkingConfigParam:
        budget = self.thinking_budget()
        if budget is None:
            return {"type": "adaptive"}
        if budget == 0:
            return {"type": "disabled"}
        return {"type": "enabled", "budget_tokens": budget}

    def output_tokens(self) -> int:
        """``max_tokens`` per response, leaving room for the thinking budget."""
        if self.max_tokens is not None:
            return self.max_tokens
        return max(DEFAULT_MAX_TOKENS, (self.thinking_budget() or 0) + DEFAULT_MAX_TOKENS // 2)

    def system_prompt(self) -> str:
        return self.system or _SYSTEM_PROMPT.format(timeout=self.command_timeout)

    def preflight(self) -> None:
        """Check, without a request, that the SDK finds credentials (and a price when a budget needs one)."""
        import anthropic

        try:
            client = anthropic.Anthropic(base_url=self.base_url, max_retries=0)
        except (anthropic.AnthropicError, ValueError, OSError) as exc:
            raise AgentUnavailable(f"anthropic agent: cannot load Anthropic credentials: {exc}") from exc
        with client:
            if not (client.api_key or client.auth_token or client.credentials):
                raise AgentUnavailable(
                    "anthropic agent: no Anthropic API key; set ANTHROPIC_API_KEY, or choose another "
                    "backend in the variant's agent settings (backend: command or claude-code)"
                )
        if self.max_cost_usd is not None and price_for(self.model, self.prices) is None:
            raise AgentUnavailable(
                f"anthropic agent: max_cost_usd is set but there is no price for model {self.model!r}; "
                "add it under the agent's prices setting ({input, output} USD per million tokens)"
            )

    def run(self, task: AgentTask) -> AgentOutcome:
        import anthropic

        session = _Session(self, task)
        session.transcript.write(
            "start",
            model=self.model,
            thinking=self.thinking_config(),
            max_tokens=self.output_tokens(),
            system=self.system_prompt(),
            prompt=task.prompt,
        )
        try:
            with anthropic.Anthropic(base_url=self.base_url, max_retries=0) as client:
                outcome = session.loop(client)
        except _Stop as stop:
            outcome = stop.outcome(session.stats, task.timeout)
        except anthropic.AnthropicError as exc:  # no usable credentials, a malformed response
            session.stats.stop_reason = "api_error"
            outcome = AgentOutcome(session.stats, f"anthropic agent: {exc}")
        session.stats.seconds = round(session.elapsed(), 3)
        session.transcript.write(
            "end",
            stop_reason=session.stats.stop_reason,
            failure=outcome.failure,
            timed_out=outcome.timed_out,
            stats=dataclasses.asdict(session.stats),
        )
        task.report(session.stats)
        outcome.transcript = transcript_of(read_events(task.log_path, session.log_start))
        return outcome


class _Stop(Exception):
    """Ends the loop early: a limit was reached or the API refused."""

    def __init__(self, reason: str, failure: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failure = failure

    def outcome(self, stats: AgentStats, timeout: float) -> AgentOutcome:
        stats.stop_reason = self.reason
        if self.reason == "timeout":
            detail = f" ({self.failure})" if self.failure else ""
            return AgentOutcome(stats, f"agent timed out after {timeout:g}s{detail}", timed_out=True)
        return AgentOutcome(stats, self.failure)


class _Transcript:
    """One JSON line per request, response, retry and tool call, appended to the agent log."""

    def __init__(self, path: Path, started: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.started = started

    def write(self, event: str, **fields: Any) -> None:
        line = {"t": round(time.monotonic() - self.started, 3), "event": event, **fields}
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(line, default=str) + "\n")


class _Session:
    """One trial's conversation: the messages so far, the running totals and the clock."""

    def __init__(self, agent: AnthropicAgent, task: AgentTask) -> None:
        self.agent = agent
        self.task = task
        self.started = time.monotonic()
        # Where this run's lines start in the agent log (an earlier attempt's may be above them).
        self.log_start = task.log_path.stat().st_size if task.log_path.exists() else 0
        self.transcript = _Transcript(task.log_path, self.started)
        self.stats = AgentStats(backend="anthropic", model=agent.model)
        self.price = price_for(agent.model, agent.prices)
        self.tools = WorktreeTools(
            root=task.worktree.resolve(),
            env=safe_env(task.env),
            command_timeout=agent.command_timeout,
            sandbox=task.sandbox,
        )
        self.messages: list[MessageParam] = [{"role": "user", "content": task.prompt}]
        if self.price is None:
            self.transcript.write("warning", message=f"no price for {agent.model!r}: cost is reported as 0")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def time_left(self) -> float:
        return self.task.timeout - self.elapsed()

    def loop(self, client: anthropic.Anthropic) -> AgentOutcome:
        """Ask, run the tools asked for, answer; until the model stops asking or a limit is hit."""
        from anthropic.types import ToolUseBlock

        while True:
            response = self.create(client)
            self.account(response)
            self.messages.append({"role": "assistant", "content": response.content})
            tool_uses = [block for block in response.content if isinstance(block, ToolUseBlock)]
            if tool_uses:
                cut_off = response.stop_reason == "max_tokens"
                self.messages.append({"role": "user", "content": [self.use_tool(b, cut_off) for b in tool_uses]})
            elif response.stop_reason == "max_tokens":
                self.messages.append({"role": "user", "content": "You were cut off by max_tokens; go on."})
            else:
                return self.finish(response.stop_reason)
            self.check_limits()

    def create(self, client: anthropic.Anthropic) -> Message:
        """One Messages API request, retried while the trial has time (see the module docstring)."""
        import anthropic

        agent, attempt = self.agent, 0
        while True:
            time_left = self.time_left()
            if time_left <= 0:
                raise _Stop("timeout")
            self.transcript.write(
                "request", turn=self.stats.turns + 1, attempt=attempt + 1, messages=len(self.messages)
            )
            try:
                return client.messages.create(
                    model=agent.model,
                    max_tokens=agent.output_tokens(),
                    system=[{"type": "text", "text": agent.system_prompt(), "cache_control": {"type": "ephemeral"}}],
                    tools=TOOLS,
                    messages=self.messages,
                    thinking=agent.thinking_config(),
                    cache_control={"type": "ephemeral"},
                    timeout=time_left,
                )
            except anthropic.APIStatusError as exc:
                if not retryable(exc.status_code):
                    raise _Stop("api_error", api_failure(exc)) from exc
                delay = retry_after(exc.response.headers)
                error = f"{exc.status_code} {exc.type or ''}: {exc.api_message or exc.message}"
            except anthropic.APIConnectionError as exc:
                delay, error = None, str(exc)
            if delay is None:
                delay = backoff(attempt)
            if delay >= self.time_left():
                raise _Stop("timeout", f"no time left for retry {attempt + 1} after {error}")
            self.transcript.write("retry", attempt=attempt + 1, error=error, delay=round(delay, 3))
            time.sleep(delay)
            attempt += 1

    def account(self, response: Message) -> None:
        """Add one response's tokens and estimated cost to the totals, and report them."""
        usage, stats = response.usage, self.stats
        tokens = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_input_tokens or 0,
            "cache_write_tokens": usage.cache_creation_input_tokens or 0,
        }
        cost = self.price.cost(*tokens.values()) if self.price else 0.0
        stats.turns += 1
        stats.input_tokens += tokens["input_tokens"]
        stats.output_tokens += tokens["output_tokens"]
        stats.cache_read_tokens += tokens["cache_read_tokens"]
        stats.cache_write_tokens += tokens["cache_write_tokens"]
        stats.cost_usd += cost
        stats.per_turn.append({"turn": stats.turns, **tokens, "cost_usd": cost, "stop_reason": response.stop_reason})
        stats.seconds = round(self.elapsed(), 3)
        self.transcript.write("response", turn=stats.turns, message=response.to_dict(mode="json"), cost_usd=cost)
        self.task.report(stats)

    def use_tool(self, block: ToolUseBlock, cut_off: bool) -> ToolResultBlockParam:
        started = time.monotonic()
        try:
            if cut_off:
                raise ToolError("not run: your reply was cut off by max_tokens; retry in smaller pieces")
            output, is_error = self.tools.call(block.name, block.input, self.time_left()), False
        except ToolError as exc:
            output, is_error = str(exc), True
        self.transcript.write(
            "tool",
            id=block.id,
            name=block.name,
            input=block.input,
            is_error=is_error,
            seconds=round(time.monotonic() - started, 3),
            output=output,
        )
        return {
            "type": "tool_result",
            "tool_use_id": block.id,
            "content": output or "(no output)",
            "is_error": is_error,
        }

    def check_limits(self) -> None:
        agent, stats = self.agent, self.stats
        if agent.max_cost_usd is not None and stats.cost_usd >= agent.max_cost_usd:
            raise _Stop(
                "max_cost_usd",
                f"agent stopped at an estimated ${stats.cost_usd:.2f}, "
                f"over its max_cost_usd of ${agent.max_cost_usd:.2f}",
            )
        if stats.turns >= agent.max_turns:
            raise _Stop("max_turns", f"agent stopped after max_turns={agent.max_turns} turns, before it finished")
        if self.time_left() <= 0:
            raise _Stop("timeout")

    def finish(self, stop_reason: str | None) -> AgentOutcome:
        self.stats.stop_reason = stop_reason
        if stop_reason in ("end_turn", "stop_sequence"):
            return AgentOutcome(self.stats)
        if stop_reason == "refusal":
            return AgentOutcome(self.stats, "the model refused the task (stop_reason: refusal)")
        return AgentOutcome(self.stats, f"the model stopped early (stop_reason: {stop_reason})")
