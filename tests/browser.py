"""Headless Chromium for the tests, driven over the DevTools protocol on a pipe (stdlib only).

Used by the report tests to open ``report.html`` as a reader would; ``needs_chromium``
skips a test where Debian's ``chromium`` is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it"
)


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (stdlib only, no websocket).

    The DevTools ``Network`` domain reports every request the *page* makes (documents, images,
    styles, fonts, fetch/XHR, websockets), unlike a net-log, which also holds the browser's own
    background traffic (component updates, account checks).  Host resolution is mapped to nowhere
    as well, so even an attempt cannot leave the machine.
    """

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # The protocol runs on the browser's fds 3 (commands) and 4 (replies): hand it our pipes there.
        shell = 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null'
        self.process = subprocess.Popen(
            ["sh", "-c", shell, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: renderers and all are killed together
        )
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._id = 0

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\0")
        self.process.stdin.flush()
        reply = self.wait(lambda m: m.get("id") == self._id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """The next message that matches; events seen on the way are kept in ``events``."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if match(message):
                    return message
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.process.stdout.fileno(), 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buffer += chunk

    def open(self, url: str, width: int = 1400, height: int = 2000) -> BrowserPage:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
        return BrowserPage(self, session)

    def requests(self) -> list[str]:
        """Every URL any page asked for, so far."""
        return [
            e["params"].get("request", {}).get("url") or e["params"].get("url", "")
            for e in self.events
            if e["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated")
        ]

    def errors(self) -> list[str]:
        return [json.dumps(e["params"])[:500] for e in self.events if e["method"] == "Runtime.exceptionThrown"]

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.send("Browser.close")
                self.process.wait(timeout=10)
        except (OSError, TimeoutError, EOFError, RuntimeError, subprocess.TimeoutExpired):
            pass  # it is killed below either way
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe:
                    pipe.close()


class BrowserPage:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        reply = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session
        )
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.browser.send("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"]
        path.write_bytes(base64.b64decode(data))

    def wait_for_load(self, timeout: float = 30.0) -> None:
        """Until the page has loaded again (it reloaded itself); TimeoutError when it does not."""
        self.browser.wait(
            lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == self.session, timeout
        )
