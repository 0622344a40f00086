"""Reading ``claude -p --output-format stream-json --verbose``: the stats, the failure and the transcript.

The CLI prints one JSON event a line: ``system`` (``init``, ``api_retry``),
``assistant`` (one per content block, several sharing a message id),
``user`` (tool results) and a final ``result`` (subtype, ``is_error``,
``api_error_status``, usage, ``total_cost_usd``, ``modelUsage``,
``permission_denials``).  A failed API call shows as an ``assistant`` message
of the model ``<synthetic>``: it is no turn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..model.record import AgentStats
from ..model.transcript import Entry, entry
from .pricing import price_for

_SYNTHETIC = "<synthetic>"
_AUTH_STATUSES = (401, 403)
#: Retries of a server error or a failed connection after which the CLI is stopped (about 4 s of its backoff).
SERVER_RETRIES = 4


def doomed_retry(event: Mapping[str, Any]) -> str | None:
    """Why to stop the CLI now, rather than let it retry for minutes what will not get better.

    A request refused for its credentials (401/403), and a server error
    (5xx but the 529 of overload) or a failed connection retried
    :data:`SERVER_RETRIES` times: the CLI's own backoff would go on for about
    three minutes.  Rate limits and overload (429, 529) are left to the CLI.
    """
    if event.get("type") != "system" or event.get("subtype") != "api_retry":
        return None
    status, error = event.get("error_status"), event.get("error")
    if status in _AUTH_STATUSES:
        return (
            f"claude: the API refused the credentials ({status} {error}); "
            "check ANTHROPIC_API_KEY (or claude login) and ANTHROPIC_BASE_URL"
        )
    attempt = event.get("attempt")
    server = status is None or (isinstance(status, int) and status >= 500 and status != 529)
    if server and isinstance(attempt, int) and attempt >= SERVER_RETRIES:
        return (
            f"claude: the API failed {attempt} times in a row ({status or 'no connection'}: {error}); "
            "stopped instead of retrying for minutes"
        )
    return None


def result_of(events: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((e for e in reversed(events) if e.get("type") == "result"), None)


def stats_of(
    events: Sequence[Mapping[str, Any]], model: str | None, prices: Mapping[str, Mapping[str, float]] | None
) -> AgentStats:
    """Turns, tokens, model and cost: turns are the model's real messages; cost from the one price table."""
    result = result_of(events) or {}
    messages = {
        e["message"].get("id"): e["message"]
        for e in events
        if e.get("type") == "assistant"
        and isinstance(e.get("message"), dict)
        and e["message"].get("model") != _SYNTHETIC
    }
    answered = next((m.get("model") for m in messages.values() if m.get("model")), None)
    listed = [re.sub(r"\[.*\]$", "", name) for name in result.get("modelUsage") or {}]
    usage = result.get("usage") or {}
    tokens = [int(usage.get(key) or 0) for key in _USAGE_KEYS]
    one_hour = int((usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0)
    stats = AgentStats(
        backend="claude-code",
        model=answered or model or (listed[0] if listed else None),
        turns=len(messages),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cache_read_tokens=tokens[2],
        cache_write_tokens=tokens[3],
        stop_reason=result.get("subtype"),
        session_id=result.get("session_id"),
    )
    cli_cost = float(result.get("total_cost_usd") or 0.0)
    price = price_for(stats.model, prices) if stats.model else None
    if price is None:
        stats.cost_usd = cli_cost
        return stats
    stats.cost_usd = price.cost(tokens[0], tokens[1], tokens[2], tokens[3] - one_hour, one_hour)
    if abs(stats.cost_usd - cli_cost) > 1e-6:
        stats.cli_cost_usd = cli_cost
    return stats


_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def failure_of(result: Mapping[str, Any] | None, max_turns: int | None, max_cost: float | None) -> str | None:
    """What went wrong, in words that name it (the CLI says ``success`` for an API error)."""
    if result is None:
        return None
    subtype, text = result.get("subtype"), str(result.get("result") or "").strip()[:300]
    if subtype == "error_max_turns":
        return f"claude stopped at max_turns ({max_turns}) before it finished"
    if subtype == "error_max_budget_usd":
        return f"claude stopped at max_cost_usd (${max_cost}) before it finished"
    status = result.get("api_error_status")
    if status in _AUTH_STATUSES:
        return f"claude: the API refused the credentials ({status}): {text}"
    if status:
        return f"claude: API error {status}: {text}"
    if result.get("is_error"):
        return f"claude failed ({subtype}): {text or 'no message'}"
    if subtype != "success":
        return f"claude stopped: {subtype}"
    return None


def denials_of(result: Mapping[str, Any] | None, mode: str) -> str | None:
    """A flag for the tool calls the CLI refused (``permission_denials``), or None."""
    denials = [d for d in (result or {}).get("permission_denials") or [] if isinstance(d, dict)]
    if not denials:
        return None
    calls = []
    for denial in denials[:5]:
        tool_input = denial.get("tool_input") or {}
        target = tool_input.get("file_path") or tool_input.get("command") or ""
        calls.append(f"{denial.get('tool_name')} {target}".strip())
    more = f" and {len(denials) - 5} more" if len(denials) > 5 else ""
    return (
        f"claude refused {len(denials)} tool call(s) under permission_mode {mode}: "
        f"{'; '.join(calls)}{more} (allow them with permission_mode or allowed_tools)"
    )


def transcript_of(events: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """The conversation as transcript entries: text, thinking, tool calls, their results, retries, the result."""
    entries: list[Entry] = []
    for event in events:
        kind, message = event.get("type"), event.get("message")
        if kind == "system" and event.get("subtype") == "api_retry":
            title = f"API retry {event.get('attempt')}: {event.get('error_status')} {event.get('error')}"
            entries.append(entry("error", title, "", True))
        elif kind in ("assistant", "user") and isinstance(message, dict):
            synthetic = message.get("model") == _SYNTHETIC
            for block in message.get("content") or []:
                if isinstance(block, dict):
                    entries.extend(_block(block, synthetic))
        elif kind == "result":
            failed = bool(event.get("is_error")) or event.get("subtype") != "success"
            entries.append(entry("result", f"result: {event.get('subtype')}", event.get("result") or "", failed))
    return entries


def _block(block: Mapping[str, Any], synthetic: bool) -> list[Entry]:
    kind = block.get("type")
    if kind == "text":
        return [entry("error" if synthetic else "assistant", "API error" if synthetic else "", block.get("text"))]
    if kind == "thinking":
        return [entry("thinking", "", block.get("thinking"))]
    if kind == "tool_use":
        tool_input = block.get("input") or {}
        if block.get("name") == "Bash" and isinstance(tool_input, dict):
            return [entry("command", tool_input.get("command", ""), tool_input.get("description", ""))]
        return [entry("tool", block.get("name"), tool_input)]
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            content = "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
        return [entry("output", "", content, block.get("is_error") is True)]
    return []
