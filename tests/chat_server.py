"""A stand-in for OpenAI's Chat Completions API (``POST /v1/chat/completions``), for driving the real aider.

Tests queue answers with :meth:`ChatServer.reply` (the assistant's text, which
for aider holds its SEARCH/REPLACE edit blocks) or errors with
:meth:`ChatServer.error`; a streamed request gets the answer as chunks, the
last one carrying the usage.
"""

from __future__ import annotations

import itertools
from typing import Any

from scripted_http import Reply, ScriptedServer, Stream

_ids = itertools.count(1)


def usage(prompt: int = 100, completion: int = 20, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def edit(path: str, search: str, replace: str) -> str:
    """An aider SEARCH/REPLACE block (an empty ``search`` makes a new file)."""
    return f"{path}\n```python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


def whole(path: str, content: str) -> str:
    """A file in aider's ``whole`` edit format: its name, then all of it fenced."""
    return f"{path}\n```python\n{content}```\n"


class ChatServer(ScriptedServer):
    path = "/chat/completions"

    def reply(self, content: str, tokens: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        """Queue an assistant message holding ``content``, sent after ``delay`` seconds."""
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        body = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion", "created": 1, "choices": [choice]}
        self.replies.append(Reply(200, {**body, "usage": tokens or usage()}, delay=delay))

    def error(self, status: int, code: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"type": code, "code": code, "message": f"scripted {code}", "param": None}}
        self.replies.append(Reply(status, body, headers or {}))

    def failure(self, status: int, kind: str, message: str) -> Reply:
        return Reply(status, {"error": {"type": kind, "code": kind, "message": message, "param": None}})

    def render(self, reply: Reply, request: dict[str, Any]) -> Reply | Stream:
        response = {**reply.body, "model": request.get("model")}
        if not request.get("stream"):
            return Reply(200, response, delay=reply.delay)
        [choice] = response["choices"]
        head = {key: response[key] for key in ("id", "object", "created", "model")} | {
            "object": "chat.completion.chunk"
        }
        delta = {"index": 0, "delta": choice["message"], "finish_reason": None}
        done = {"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}
        events: list[tuple[str | None, Any]] = [
            (None, {**head, "choices": [delta]}),
            (None, {**head, "choices": [done]}),
            (None, {**head, "choices": [], "usage": response["usage"]}),
            (None, "[DONE]"),
        ]
        return Stream(events)
