"""A stand-in for the Anthropic Messages API, for driving the real SDK and Claude Code over real HTTP.

Tests queue replies (:meth:`MessagesServer.message`, :meth:`MessagesServer.error`);
each ``POST /v1/messages`` takes the next one, and its JSON body is kept in
:attr:`MessagesServer.requests` so tests can check what the agent sent back.  A
request with ``stream: true`` (Claude Code's) gets the message as the API's
server-sent events.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from scripted_http import Reply, ScriptedServer, Stream

_ids = itertools.count(1)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def thinking(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": f"sig-{next(_ids)}"}


def tool_use(name: str, **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{next(_ids)}", "name": name, "input": tool_input}


def tokens(input: int = 100, output: int = 20, cache_read: int = 0, cache_write: int = 0) -> dict[str, int]:
    return {
        "input_tokens": input,
        "output_tokens": output,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }


class MessagesServer(ScriptedServer):
    """Serves queued replies in order on 127.0.0.1; an unexpected request gets a 400."""

    path = "/v1/messages"

    def message(
        self, *content: dict[str, Any], stop_reason: str | None = None, usage: dict[str, int] | None = None
    ) -> None:
        """Queue a message; ``stop_reason`` defaults to tool_use when it asks for a tool, else end_turn."""
        if stop_reason is None:
            stop_reason = "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn"
        body = {
            "id": f"msg_{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": "",  # filled in with the requested model
            "content": list(content),
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage or tokens(),
        }
        self.replies.append(Reply(200, body))

    def error(self, status: int, kind: str, headers: dict[str, str] | None = None) -> None:
        body = {"type": "error", "error": {"type": kind, "message": f"scripted {kind}"}}
        self.replies.append(Reply(status, body, headers or {}))

    def tool_results(self, request: int) -> list[dict[str, Any]]:
        """The tool_result blocks of the last message of request number ``request``."""
        return [b for b in self.requests[request]["messages"][-1]["content"] if b["type"] == "tool_result"]

    def render(self, reply: Reply, request: dict[str, Any]) -> Reply | Stream:
        body = {**reply.body, "model": request.get("model")}
        return _events(body) if request.get("stream") else Reply(200, body, reply.headers)


def _events(message: dict[str, Any]) -> Stream:
    """``message`` as the Messages API streams it: start, each block's start/delta/stop, delta, stop."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        empty, deltas = _block_deltas(block)
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": empty}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return Stream(events)


def _block_deltas(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if block["type"] == "text":
        return {"type": "text", "text": ""}, [{"type": "text_delta", "text": block["text"]}]
    if block["type"] == "thinking":
        deltas = [
            {"type": "thinking_delta", "thinking": block["thinking"]},
            {"type": "signature_delta", "signature": block["signature"]},
        ]
        return {"type": "thinking", "thinking": "", "signature": ""}, deltas
    empty = {**block, "input": {}}
    return empty, [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
