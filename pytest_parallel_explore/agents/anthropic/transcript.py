"""The built-in agent's log (one JSON line per request, response, retry and tool call) as transcript entries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...model.transcript import Entry, entry


def transcript_of(events: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """The model's text and thinking, each tool call with its output, retries, and how it ended."""
    entries: list[Entry] = []
    for event in events:
        kind = event.get("event")
        if kind == "response":
            message = event.get("message") or {}
            for block in message.get("content") or [] if isinstance(message, dict) else []:
                if isinstance(block, dict) and block.get("type") == "text":
                    entries.append(entry("assistant", "", block.get("text")))
                elif isinstance(block, dict) and block.get("type") == "thinking":
                    entries.append(entry("thinking", "", block.get("thinking")))
        elif kind == "tool":
            tool_input = event.get("input") or {}
            failed = event.get("is_error") is True
            if event.get("name") == "run_command" and isinstance(tool_input, dict):
                entries.append(entry("command", tool_input.get("command"), event.get("output"), failed))
            else:
                entries.append(entry("tool", event.get("name"), tool_input))
                entries.append(entry("output", "", event.get("output"), failed))
        elif kind == "retry":
            entries.append(entry("error", f"retry {event.get('attempt')}: {event.get('error')}", "", True))
        elif kind == "end":
            failure = event.get("failure")
            entries.append(entry("result", f"end: {event.get('stop_reason')}", failure or "", failure is not None))
    return entries
