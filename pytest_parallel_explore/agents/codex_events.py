"""Reading Codex: ``codex exec --json`` events for the stats and failure, its session file for the transcript.

``codex exec --json`` prints ``thread.started`` (the session id),
``turn.completed`` (usage in OpenAI's terms: ``input_tokens`` include the
``cached_input_tokens``) or ``turn.failed``, ``item.*`` events (messages,
commands, file changes) and ``error`` events (``Reconnecting... 2/5
(unexpected status 401 ...)``).  It names no model and no cost, and leaves out
commands its sandbox refused; the session file it keeps under ``CODEX_HOME``
(``sessions/**/rollout-*.jsonl``) has the model and every call with its
output, so the transcript and the refused writes come from there.  That file
is in a folder the agent can write: it is read bounded, without following
links, and trusted for nothing but the transcript, the flag and (when the
settings name none) the model.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..model.record import AgentStats
from ..model.transcript import Entry, entry
from .pricing import price_for

#: What of a session file is read: the rest of a larger one is left out.
MAX_SESSION_BYTES = 20 << 20
#: The items that are a step of the model's (its turns, counted against ``max_turns``).
STEP_ITEMS = ("agent_message", "command_execution", "file_change", "mcp_tool_call", "web_search")
_AUTH = re.compile(r"\b(401|403)\b")
#: What a command's output says when Codex's sandbox refused a write.
_REFUSED = ("Read-only file system", "Operation not permitted", "Permission denied")


class Watch:
    """Stops Codex on an authentication error (it retries those five times) or past ``max_turns`` steps."""

    def __init__(self, max_turns: int | None) -> None:
        self.max_turns = max_turns
        self.steps = 0

    def __call__(self, event: Mapping[str, Any]) -> str | None:
        message = str(event.get("message") or "")
        if event.get("type") == "error" and _AUTH.search(message):
            return f"codex: the API refused the credentials: {message[:300]}"
        if _is_step(event):
            self.steps += 1
            if self.max_turns is not None and self.steps > self.max_turns:
                return f"codex stopped at max_turns ({self.max_turns}) before it finished"
        return None


def _is_step(event: Mapping[str, Any]) -> bool:
    item = event.get("item")
    return event.get("type") == "item.completed" and isinstance(item, dict) and item.get("type") in STEP_ITEMS


def stats_of(
    events: Sequence[Mapping[str, Any]], model: str | None, prices: Mapping[str, Mapping[str, float]] | None
) -> AgentStats:
    """Turns (the model's steps), tokens in Anthropic's terms (cache reads out of the input), and the priced cost."""
    stats = AgentStats(backend="codex", model=model, turns=sum(1 for e in events if _is_step(e)))
    for event in events:
        if event.get("type") == "thread.started":
            stats.session_id = str(event.get("thread_id"))
        usage = event.get("usage") if event.get("type") == "turn.completed" else None
        if isinstance(usage, dict):
            cached = int(usage.get("cached_input_tokens") or 0)
            stats.input_tokens += int(usage.get("input_tokens") or 0) - cached
            stats.cache_read_tokens += cached
            stats.cache_write_tokens += int(usage.get("cache_write_input_tokens") or 0)
            stats.output_tokens += int(usage.get("output_tokens") or 0)
    price = price_for(stats.model, prices) if stats.model else None
    if price is not None:
        stats.cost_usd = price.cost(
            stats.input_tokens, stats.output_tokens, stats.cache_read_tokens, stats.cache_write_tokens
        )
    return stats


def failure_of(events: Sequence[Mapping[str, Any]]) -> str | None:
    failed = next((e for e in reversed(events) if e.get("type") == "turn.failed"), None)
    if failed is not None:
        error = failed.get("error") or {}
        message = str(error.get("message") if isinstance(error, dict) else error)[:300]
        if _AUTH.search(message):
            return f"codex: the API refused the credentials: {message}"
        return f"codex failed: {message}"
    if not any(e.get("type") == "turn.completed" for e in events):
        return "codex ended without completing its turn"
    return None


def session_items(state: Path, thread: str | None) -> list[Mapping[str, Any]]:
    """The lines of the session file of ``thread`` under ``state/sessions`` (none when there is none)."""
    sessions = state / "sessions"
    if thread is None or not re.fullmatch(r"[0-9a-zA-Z-]+", thread) or not sessions.is_dir():
        return []
    found = sorted(p for p in sessions.rglob(f"rollout-*{thread}.jsonl") if not p.is_symlink())
    if not found:
        return []
    try:
        fd = os.open(found[0], os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_SESSION_BYTES)
    items: list[Mapping[str, Any]] = []
    for line in data.decode(errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            items.append(item)
    return items


def session_model(items: Sequence[Mapping[str, Any]]) -> str | None:
    context = next((i.get("payload") for i in items if i.get("type") == "turn_context"), None)
    model = context.get("model") if isinstance(context, dict) else None
    return model if isinstance(model, str) else None


def refused_writes(items: Sequence[Mapping[str, Any]], mode: str) -> str | None:
    """A flag for the commands Codex's sandbox refused to let write, or None."""
    outputs = [p for p in _payloads(items) if p.get("type") == "function_call_output"]
    refused = [str(p.get("output")) for p in outputs if any(s in str(p.get("output")) for s in _REFUSED)]
    if not refused:
        return None
    last = refused[-1].strip().splitlines()[-1][:200]
    return f"codex's sandbox ({mode}) refused {len(refused)} command(s) a write: {last}"


def transcript_of(items: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """The session's messages, reasoning, calls and outputs; from the JSON events when there is no session file."""
    entries: list[Entry] = []
    for payload in _payloads(items):
        kind = payload.get("type")
        if kind == "message" and payload.get("role") == "assistant":
            texts = [c.get("text", "") for c in payload.get("content") or [] if isinstance(c, dict)]
            entries.append(entry("assistant", "", "\n".join(texts)))
        elif kind == "reasoning":
            summary = [s.get("text", "") for s in payload.get("summary") or [] if isinstance(s, dict)]
            entries.append(entry("thinking", "", "\n".join(summary)))
        elif kind in ("function_call", "custom_tool_call"):
            arguments = payload.get("arguments") or payload.get("input") or ""
            command = _command(arguments)
            if command is not None:
                entries.append(entry("command", command))
            else:
                entries.append(entry("tool", payload.get("name"), arguments))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = str(payload.get("output") or "")
            failed = bool(re.search(r"Process exited with code [1-9]", output))
            entries.append(entry("output", "", output, failed))
    if not entries:
        entries = [_event_entry(e) for e in events if _is_step(e)]
    for event in events:
        if event.get("type") in ("error", "turn.failed"):
            error = event.get("error")
            message = event.get("message") or (error.get("message") if isinstance(error, dict) else error)
            entries.append(entry("error", message, "", True))
    return entries


def _payloads(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [i["payload"] for i in items if i.get("type") == "response_item" and isinstance(i.get("payload"), dict)]


def _command(arguments: Any) -> str | None:
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        return None
    command = parsed.get("cmd") or parsed.get("command") if isinstance(parsed, dict) else None
    if isinstance(command, list):
        command = " ".join(str(c) for c in command)
    return command if isinstance(command, str) else None


def _event_entry(event: Mapping[str, Any]) -> Entry:
    item = event["item"]
    if item.get("type") == "command_execution":
        failed = item.get("exit_code") not in (0, None)
        return entry("command", item.get("command"), item.get("aggregated_output"), failed)
    if item.get("type") == "agent_message":
        return entry("assistant", "", item.get("text"))
    return entry("tool", item.get("type"), item)
