"""A stand-in for the Anthropic Messages API, for driving the real SDK over real HTTP.

Tests queue replies (:meth:`MessagesServer.message`, :meth:`MessagesServer.error`);
each ``POST /v1/messages`` takes the next one, and its JSON body is kept in
:attr:`MessagesServer.requests` so tests can check what the agent sent back.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


@dataclasses.dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class MessagesServer:
    """Serves queued replies in order on 127.0.0.1; an unexpected request gets a 400."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = _Server(self)
        # A short poll interval, so that close() does not wait out the default half second.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

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

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _answer(self, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            if path != "/v1/messages":
                return Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
            self.requests.append(body)
            if not self.replies:
                return Reply(
                    400, {"type": "error", "error": {"type": "invalid_request_error", "message": "no reply left"}}
                )
            reply = self.replies.pop(0)
            if reply.status == 200:
                reply.body["model"] = body.get("model")
            return reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: MessagesServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        reply = self.server.owner._answer(self.path.split("?")[0], body)
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in {**reply.headers, "content-type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows what the tests assert, not the access log."""
