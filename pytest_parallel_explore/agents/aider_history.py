"""Reading aider: its analytics log for the stats and the failure, its chat history for the transcript.

aider prints for people, but writes two files a machine can read, both in
the trial's state folder.  The analytics log (``--analytics-log``, one JSON
object a line, written even with analytics off) has ``message_send_starting``
before each request to the model, ``message_send`` after each answer (its
``prompt_tokens``, ``completion_tokens`` and aider's own ``cost``) and
``exit`` with its reason; it names no model that aider's price list lacks
(``openai/REDACTED``), and a request that failed leaves no event of its own.
The chat history (``--chat-history-file``, markdown) has the model's answers
as text, aider's own messages (edits applied, commands run, API errors, the
reflection limit) quoted with ``>``, and the model aider used.  Both are
written where the agent's commands could write too: read bounded, without
following links, and trusted for nothing but the record's figures and the
transcript.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..model.record import AgentStats
from ..model.transcript import Entry, entry
from .pricing import price_for

#: aider's limit on the requests it makes after the first for one message (``Coder.max_reflections``).
_REFLECTIONS = re.compile(r"Only (\d+) reflections allowed, stopping\.")
_API_ERROR = re.compile(r"\blitellm\.(\w+Error)\b")
_MODEL = re.compile(r"^> (?:Main model|Model): (\S+) with ", re.MULTILINE)
#: What aider says when an edit of the model's was not applied.
_EDIT_FAILED = ("The LLM did not conform to the edit format", "failed to match", "Malformed")


class Watch:
    """Stops aider past ``max_turns`` requests to the model (aider has no such limit, only its reflections)."""

    def __init__(self, max_turns: int | None) -> None:
        self.max_turns = max_turns
        self.requests = 0

    def __call__(self, event: Mapping[str, Any]) -> str | None:
        if event.get("event") == "message_send_starting":
            self.requests += 1
            if self.max_turns is not None and self.requests > self.max_turns:
                return f"aider stopped at max_turns ({self.max_turns}) before it finished"
        return None


def model_of(history: str) -> str | None:
    """The model aider said it used (``Model: openai/gpt-4.1 with diff edit format``)."""
    found = _MODEL.search(history)
    return found.group(1) if found else None


def stats_of(
    events: Sequence[Mapping[str, Any]], model: str | None, prices: Mapping[str, Mapping[str, float]] | None
) -> AgentStats:
    """Turns (answered requests), tokens, and the cost from the one price table, aider's own beside it.

    aider's usage keeps cached input inside ``prompt_tokens``: it is all input
    here, an overestimate of the cost for a model that caches.
    """
    stats = AgentStats(backend="aider", model=model)
    own = 0.0
    for event in events:
        properties = event.get("properties")
        if event.get("event") != "message_send" or not isinstance(properties, dict):
            continue
        stats.turns += 1
        stats.input_tokens += _count(properties.get("prompt_tokens"))
        stats.output_tokens += _count(properties.get("completion_tokens"))
        cost = properties.get("cost")
        own += float(cost) if isinstance(cost, (int, float)) and cost > 0 else 0.0
    # A provider's prefix (openai/, anthropic/, openrouter/anthropic/) is not part of the price table's names.
    price = price_for(model.rsplit("/", 1)[-1], prices) if model else None
    if price is not None:
        stats.cost_usd = price.cost(stats.input_tokens, stats.output_tokens, 0, 0)
    if own and abs(own - stats.cost_usd) > 1e-9:
        stats.cli_cost_usd = round(own, 6)
    return stats


def failure_of(events: Sequence[Mapping[str, Any]], history: str, returncode: int | None) -> str | None:
    """Why aider did not finish: a request that got no answer, its reflection limit, or its exit."""
    names = [e.get("event") for e in events]
    errors = [line for line in _quoted(history) if _API_ERROR.search(line)]
    started = [i for i, name in enumerate(names) if name == "message_send_starting"]
    if started and "message_send" not in names[started[-1] :]:
        error = errors[-1][:300] if errors else "no answer"
        if "AuthenticationError" in error or "PermissionDeniedError" in error:
            return f"aider: the API refused the credentials: {error}"
        return f"aider: its request to the model failed: {error}"
    limit = _REFLECTIONS.search(history)
    if limit:
        return f"aider stopped at its limit of {limit.group(1)} reflections (requests after the first), unfinished"
    if returncode:
        return f"aider exited with status {returncode}"
    if not started:
        reason = next((e.get("properties") for e in reversed(events) if e.get("event") == "exit"), None)
        said = f" ({reason.get('reason')})" if isinstance(reason, dict) else ""
        return f"aider sent nothing to the model{said}"
    return None


def transcript_of(history: str) -> list[Entry]:
    """The chat history after the prompt: the model's answers, aider's messages, commands, errors."""
    return list(_entries(history))


def _entries(history: str) -> Iterator[Entry]:
    lines = history.splitlines()
    # The header before the first user message (``####``) is aider's start-up banner and command line.
    start = next((i for i, line in enumerate(lines) if line.startswith("#### ")), len(lines))
    said: list[str] = []  # aider's plain messages in a row, shown as one entry
    for kind, text in _blocks(lines[start:]):
        if kind == "aider" and text.startswith("Tokens: "):
            continue  # the usage line: the record has the figures
        if kind == "aider" and not text.startswith("Running ") and not _is_error(text):
            said.append(text)
            continue
        if said:
            yield entry("output", "aider", "\n".join(said))
            said = []
        if kind == "assistant":
            yield entry("assistant", "", text)
        elif text.startswith("Running "):
            yield entry("command", text.removeprefix("Running "))
        else:
            yield entry("error", text, text, True)
    if said:
        yield entry("output", "aider", "\n".join(said))


def _is_error(text: str) -> bool:
    return bool(_API_ERROR.search(text) or _REFLECTIONS.search(text)) or any(s in text for s in _EDIT_FAILED)


def _blocks(lines: Sequence[str]) -> Iterator[tuple[str, str]]:
    """``("assistant", text)`` for the model's answers, ``("aider", message)`` for each quoted message.

    aider quotes a message's first line; a message of several lines runs on
    unquoted up to the line ending with the markdown line break ("  ").
    """
    index, answer = 0, list[str]()
    while index < len(lines):
        line = lines[index]
        if line.startswith("> "):
            message = [line[2:]]
            while not lines[index].endswith("  ") and index + 1 < len(lines):
                index += 1
                message.append(lines[index])
            if any(answer):
                yield "assistant", "\n".join(answer).strip()
            answer = []
            yield "aider", "\n".join(message).rstrip()
        elif line.startswith("#### "):
            answer = []  # the user's message (the prompt)
        else:
            answer.append(line)
        index += 1
    if any(answer):
        yield "assistant", "\n".join(answer).strip()


def _quoted(history: str) -> list[str]:
    return [line[2:].rstrip() for line in history.splitlines() if line.startswith("> ")]


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0
