"""A trial's transcript: the agent's turns, tool calls, commands and their outputs, one backend-neutral list.

Each backend turns its own output (the built-in agent's JSON lines, Claude
Code's ``stream-json``, ``codex exec --json``, aider's chat history) into
:class:`Entry` items; the trial saves them as ``results/<trial>_transcript.json``
and ``report.html`` shows them, so a reviewer sees how a score was reached
whatever ran.  Everything in an entry is the agent's text, hostile input: it
is bounded here (:data:`MAX_ENTRY_CHARS`, :data:`MAX_ENTRIES`) and escaped
where it is shown.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

#: What an entry is: the model's text, its thinking, a tool call, what the tool
#: returned, a shell command with its output, a retry or error, the final result.
KINDS = ("assistant", "thinking", "tool", "output", "command", "error", "result")
#: Characters kept of one entry's text; the rest is cut, and the entry says how much.
MAX_ENTRY_CHARS = 8_000
#: Entries kept of one trial; past it the last entry says how many were left out.
MAX_ENTRIES = 2_000
#: Bytes of a transcript file read back: anything larger was not written by :func:`save`.
MAX_FILE_BYTES = (MAX_ENTRY_CHARS + 200) * 4 * (MAX_ENTRIES + 1)
SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class Entry:
    kind: str  # one of KINDS
    title: str  # a tool's name, a command, an error's kind: one line
    text: str = ""
    failed: bool = False  # a tool or command that failed, a refused call, an API error


def entry(kind: str, title: Any, text: Any = "", failed: bool = False) -> Entry:
    """An entry from whatever a CLI printed: values made text, cut to size."""
    return Entry(kind, _cut(_text(title).splitlines()[0] if _text(title) else "", 300), _cut(_text(text)), failed)


def save(path: Path, entries: Iterable[Entry]) -> None:
    """Write ``entries`` (at most :data:`MAX_ENTRIES`) to ``path`` atomically; no entries, no file."""
    kept = list(_bounded(entries))
    if not kept:
        return
    data = {"schema": SCHEMA, "entries": [dataclasses.asdict(e) for e in kept]}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


def load(path: Path) -> list[Entry] | None:
    """The entries saved at ``path``, checked and bounded again; None when there is no usable file."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_FILE_BYTES:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    items = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    entries = []
    for item in items[: MAX_ENTRIES + 1]:
        if isinstance(item, dict) and item.get("kind") in KINDS:
            entries.append(entry(item["kind"], item.get("title", ""), item.get("text", ""), item.get("failed") is True))
    return entries


def _bounded(entries: Iterable[Entry]) -> Iterator[Entry]:
    count = 0
    for item in entries:
        count += 1
        if count <= MAX_ENTRIES:
            yield item
    if count > MAX_ENTRIES:
        yield Entry("error", f"{count - MAX_ENTRIES:,} more entries left out of the report")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, ensure_ascii=False, default=str)


def _cut(text: str, limit: int = MAX_ENTRY_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
