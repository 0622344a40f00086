"""A stand-in for OpenAI's Responses API (``POST /v1/responses``), for driving the real Codex CLI.

Tests queue responses made of output items (:func:`message`, :func:`shell_call`,
:func:`function_call`) with :meth:`ResponsesServer.respond`, or errors with
:meth:`ResponsesServer.error`; a streamed request (Codex always streams) gets
the response as the API's server-sent events, ending in ``response.completed``
with its usage.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from scripted_http import Reply, ScriptedServer, Stream

_ids = itertools.count(1)


def message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{next(_ids)}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{next(_ids)}",
        "call_id": f"call_{next(_ids)}",
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


def usage(input: int = 100, output: int = 20, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output,
    }


class ResponsesServer(ScriptedServer):
    path = "/responses"

    def respond(self, *output: dict[str, Any], tokens: dict[str, Any] | None = None) -> None:
        """Queue a response holding ``output`` items."""
        body = {"id": f"resp_{next(_ids)}", "object": "response", "status": "completed", "output": list(output)}
        self.replies.append(Reply(200, {**body, "usage": tokens or usage()}))

    def error(self, status: int, code: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"type": code, "code": code, "message": f"scripted {code}", "param": None}}
        self.replies.append(Reply(status, body, headers or {}))

    def failure(self, status: int, kind: str, message: str) -> Reply:
        return Reply(status, {"error": {"type": kind, "code": kind, "message": message, "param": None}})

    def outputs(self, request: int, kind: str) -> list[dict[str, Any]]:
        """The input items of type ``kind`` (``function_call_output``) that request number ``request`` sent."""
        return [item for item in self.requests[request].get("input", []) if item.get("type") == kind]

    def render(self, reply: Reply, request: dict[str, Any]) -> Reply | Stream:
        response = {**reply.body, "model": request.get("model")}
        if not request.get("stream"):
            return Reply(200, response)
        created = {**response, "status": "in_progress", "output": []}
        events: list[tuple[str | None, Any]] = [("response.created", {"type": "response.created", "response": created})]
        for index, item in enumerate(response["output"]):
            added = {"type": "response.output_item.added", "output_index": index, "item": item}
            done = {"type": "response.output_item.done", "output_index": index, "item": item}
            events += [("response.output_item.added", added), ("response.output_item.done", done)]
        events.append(("response.completed", {"type": "response.completed", "response": response}))
        return Stream(events)
