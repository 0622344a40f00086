"""The built-in agent's ``search`` tool, run as a child process by :mod:`.tools`.

Python's ``re`` cannot be interrupted from its own thread, and a pattern such
as ``(a+)+$`` backtracks for as long as you let it; so the search runs here,
as ``python -I -S _search.py`` with a time limit, and the parent kills it when
the time is up.  It imports nothing from the package (``-I -S``: no site, no
environment), reads its request as JSON on stdin and writes one JSON object on
stdout: ``{"matches": [...], "more": bool}`` or ``{"error": "..."}``.

Only regular files inside the root are read, of at most ``max_file_bytes``,
opened with ``O_NONBLOCK``: FIFOs, sockets and devices met while walking are
skipped, never opened.  Its memory is capped with ``RLIMIT_AS``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import Any

_MEMORY_LIMIT_BYTES = 1 << 30
_LINE_CHARS = 300  # of a matching line shown


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, _MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):  # not on this platform, or a lower hard limit already
        pass


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root + os.sep)


def _files(root: str, start: str) -> Iterator[str]:
    """Paths under ``start`` (a file or a folder), not descending into ``.git`` or symlinked folders."""
    if not os.path.isdir(start):
        yield start
        return
    for folder, dirs, names in os.walk(start):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            yield os.path.join(folder, name)


def _read_text(root: str, path: str, max_bytes: int) -> str | None:
    """The text of ``path`` if it is a regular text file inside ``root`` and small enough, else None."""
    try:
        real = os.path.realpath(path)
        if not _inside(root, real) or os.path.relpath(real, root).split(os.sep)[0] == ".git":
            return None
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # swapped since the stat
                return None
            data = file.read(max_bytes + 1)
    except OSError:
        return None
    if len(data) > max_bytes or b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def search(request: dict[str, Any]) -> dict[str, Any]:
    try:
        regex = re.compile(request["pattern"])
    except (re.error, RecursionError, OverflowError, MemoryError) as exc:
        return {"error": f"bad regular expression {request['pattern']!r}: {exc}"}
    root, glob, limit = request["root"], request["glob"], request["limit"]
    matches: list[str] = []
    for path in _files(root, request["start"]):
        shown = os.path.relpath(path, root)
        if glob and not (fnmatch.fnmatch(shown, glob) or fnmatch.fnmatch(os.path.basename(path), glob)):
            continue
        text = _read_text(root, path, request["max_file_bytes"])
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if regex.search(line):
                matches.append(f"{shown}:{number}: {line[:_LINE_CHARS]}")
                if len(matches) > limit:
                    return {"matches": matches[:limit], "more": True}
    return {"matches": matches, "more": False}


def main() -> None:
    _limit_memory()
    request = json.load(sys.stdin)
    try:
        answer = search(request)
    except MemoryError:
        answer = {"error": "the search ran out of memory (a pattern that backtracks too much?)"}
    except RecursionError as exc:
        answer = {"error": f"the search failed: {exc}"}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
