"""The HTTP side of the scripted model APIs the tests point real clients at (SDK and CLIs).

A :class:`ScriptedServer` serves queued replies in order on 127.0.0.1, keeps
every request's JSON body in :attr:`ScriptedServer.requests`, and answers a
reply either as one JSON body or as a server-sent event stream (what a client
that asked for ``stream: true`` reads).  The API-specific servers
(``messages_server``, ``responses_server``, ``chat_server``) say which path
they serve and how a queued reply looks on the wire.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0  # seconds before it is sent, as a model takes to answer


@dataclasses.dataclass
class Stream:
    """A reply sent as server-sent events: ``(event name or None, data)`` pairs."""

    events: list[tuple[str | None, Any]]


class ScriptedServer:
    """Serves queued replies in order; a request on another path gets a 404, one past the script a 400."""

    #: The request path this API answers (``/v1/messages``).
    path = ""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._httpd = _Server(self)
        # A short poll interval, so that close() does not wait out the default half second.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def answer(self, path: str, body: dict[str, Any]) -> Reply | Stream:
        with self.lock:
            if not path.endswith(self.path):
                return self.failure(404, "not_found_error", path)
            self.requests.append(body)
            if not self.replies:
                return self.failure(400, "invalid_request_error", "no reply left")
            reply = self.replies.pop(0)
            return self.render(reply, body) if reply.status == 200 else reply

    def render(self, reply: Reply, request: dict[str, Any]) -> Reply | Stream:
        """How a queued 200 reply answers ``request`` (streamed when it asked for a stream)."""
        return reply

    def failure(self, status: int, kind: str, message: str) -> Reply:
        return Reply(status, {"type": "error", "error": {"type": kind, "message": message}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: ScriptedServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) or b"{}"
        try:
            body = json.loads(raw)
        except ValueError:  # a compressed or otherwise non-JSON body: kept as its size
            body = {"undecoded_bytes": len(raw)}
        reply = self.server.owner.answer(self.path.split("?")[0], body)
        if isinstance(reply, Reply):
            time.sleep(reply.delay)
        if isinstance(reply, Stream):
            self._stream(reply)
            return
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in {**reply.headers, "content-type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        """Model lists and the like: an empty answer, so a client that looks first goes on."""
        data = b'{"data": [], "object": "list", "models": []}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, stream: Stream) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")  # HTTP/1.0: the body ends when the connection does
        self.end_headers()
        for event, data in stream.events:
            text = data if isinstance(data, str) else json.dumps(data)
            head = f"event: {event}\n" if event else ""
            self.wfile.write(f"{head}data: {text}\n\n".encode())
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows what the tests assert, not the access log."""
