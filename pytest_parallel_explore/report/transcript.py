"""A trial's transcript as ``report.html`` shows it: its entries, read back bounded, and a one-line summary.

The entries (see :mod:`..model.transcript`) are the agent's own text; the
page escapes them (autoescaping) and shows each collapsed under a one-line
title, with a search box that filters them in the browser.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from ..model.paths import ExperimentPaths
from ..model.transcript import Entry, load

#: How each kind of entry is labelled on the page.
LABELS = {
    "assistant": "says",
    "thinking": "thinks",
    "tool": "tool",
    "output": "result",
    "command": "runs",
    "error": "error",
    "result": "end",
}


@dataclasses.dataclass(frozen=True)
class TranscriptView:
    entries: list[Entry]
    summary: str  # "14 entries: 5 commands, 3 tool calls, 2 failed"


def read_transcripts(paths: ExperimentPaths, trials: Iterable[str]) -> Mapping[str, TranscriptView]:
    """The transcripts of ``trials`` that have one (``results/<trial>_transcript.json``)."""
    views = {}
    for trial in trials:
        entries = load(paths.trial_file(trial, "_transcript.json"))
        if entries:
            views[trial] = view(entries)
    return views


def view(entries: list[Entry]) -> TranscriptView:
    counts = [
        (sum(1 for e in entries if e.kind == "command"), "command", "commands"),
        (sum(1 for e in entries if e.kind == "tool"), "tool call", "tool calls"),
        (sum(1 for e in entries if e.failed), "failed", "failed"),
    ]
    parts = [f"{n} {one if n == 1 else many}" for n, one, many in counts if n]
    head = f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}"
    return TranscriptView(entries, f"{head}: {', '.join(parts)}" if parts else head)
