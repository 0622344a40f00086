"""The live view on the terminal: one line per running trial while the experiment runs.

On a terminal the lines are a block under pytest's own output, redrawn in
place (the cursor is put back at the end of pytest's line, so its progress
dots continue where they were); elsewhere (CI logs, pytester) each change of
a trial's step is one plain line.  It is used from the main thread only; the
controller wraps the hooks in which pytest's terminal reporter writes in
:meth:`LiveView.suspended`, so the block is erased before pytest writes and
redrawn after.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Protocol, TextIO

from ..model.record import TrialRecord

#: Clear from the cursor to the end of the screen; cursor up N lines; cursor to column N (1-based).
_CLEAR, _UP, _COLUMN = "\x1b[J", "\x1b[{}A", "\x1b[{}G"


def progress_line(experiment: str, record: TrialRecord, now: float | None = None) -> str:
    """``explore calc[fast]: agent 12.3s, 4 turns, 12,345 tokens, $0.0123``.

    In the score step, the wait for a suite slot (``score.max_concurrent``) shows too:
    ``score 30.1s, suite waiting for a slot 25.0s``, then ``suite waited 25.3s for a slot``.
    """
    step = record.status.value + (" (from checkpoint)" if record.from_checkpoint else "")
    started = record.started_at
    elapsed = record.elapsed if now is None or started is None else (record.finished_at or now) - started
    parts = [f"explore {experiment}[{record.name}]: {step} {elapsed:.1f}s"]
    since, waited = record.suite_waiting_since, record.suite_wait
    if since is not None and not record.status.finished:
        parts.append(f"suite waiting for a slot {max(0.0, (now or time.time()) - since):.1f}s")
    elif waited is not None and waited >= 0.05:  # a wait too short to read is no news
        parts.append(f"suite waited {waited:.1f}s for a slot")
    agent = record.agent
    if agent.turns:
        parts.append(f"{agent.turns} turns")
    tokens = agent.input_tokens + agent.output_tokens
    if tokens:
        parts.append(f"{tokens:,} tokens")
    if agent.cost_usd:
        parts.append(f"${agent.cost_usd:.4f}")
    return ", ".join(parts)


class TerminalWriter(Protocol):
    """What the view uses of pytest's terminal writer (``config.get_terminal_writer()``; its class is private)."""

    hasmarkup: bool
    fullwidth: int
    _file: TextIO

    @property
    def width_of_current_line(self) -> int: ...

    def line(self, s: str = "", **markup: bool) -> None: ...


class LiveView:
    """What the terminal shows of the running trials."""

    def __init__(self, writer: TerminalWriter, experiment: str, *, in_place: bool) -> None:
        self.writer = writer
        self.experiment = experiment
        self.in_place = in_place
        self.running: dict[str, TrialRecord] = {}
        self._seen: dict[str, tuple[object, ...]] = {}
        self._drawn = 0  # lines of the block now on the screen
        self._started = False  # nothing is drawn before pytest has printed its collection

    @staticmethod
    def for_terminal(writer: TerminalWriter, experiment: str) -> LiveView:
        """In place when the output is a terminal that understands cursor movement, plain lines otherwise."""
        file: TextIO = writer._file  # the reporter's own stream; written raw so its line bookkeeping stays right
        in_place = writer.hasmarkup and hasattr(file, "isatty") and file.isatty()
        return LiveView(writer, experiment, in_place=in_place)

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._redraw()

    def update(self, record: TrialRecord) -> bool:
        """Take a trial's saved record into the view; True when its step changed."""
        waiting = record.suite_waiting_since is not None
        state = (record.status, record.from_checkpoint, record.agent.turns, record.agent.cost_usd, waiting)
        previous = self._seen.get(record.name)
        if previous == state:
            return False
        self._seen[record.name] = state
        stepped = previous is None or previous[:2] != state[:2]
        if record.status.finished:
            self.running.pop(record.name, None)
        else:
            self.running[record.name] = record
        if not self.in_place:
            self._plain(progress_line(self.experiment, record))
        elif record.status.finished and stepped:
            with self.suspended():  # a finished trial's line stays in the scrollback
                self._plain(progress_line(self.experiment, record))
        else:
            self._redraw()
        return stepped

    def tick(self) -> None:
        """Redraw the block so that elapsed times move (in place only)."""
        if self.in_place:
            self._redraw()

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Erase the block while someone else writes to the terminal; draw it again afterwards."""
        self._erase()
        try:
            yield
        finally:
            self._draw()

    def stop(self) -> None:
        self._erase()
        self._started = False

    # -- drawing -----------------------------------------------------------

    def _plain(self, line: str) -> None:
        if self.writer.width_of_current_line:
            self.writer.line()  # finish pytest's line of progress dots first
        self.writer.line(line)

    def _redraw(self) -> None:
        self._erase()
        self._draw()

    def _draw(self) -> None:
        if not (self.in_place and self._started and self.running):
            return
        now, width = time.time(), max(20, self.writer.fullwidth - 1)
        lines = [progress_line(self.experiment, r, now)[:width] for r in self.running.values()]
        # Below pytest's current line, then back to where pytest's cursor was.
        column = self.writer.width_of_current_line + 1
        self._raw("\n" + "\n".join(lines) + _UP.format(len(lines)) + _COLUMN.format(column))
        self._drawn = len(lines)

    def _erase(self) -> None:
        if self._drawn:
            self._raw(_CLEAR)
            self._drawn = 0

    def _raw(self, text: str) -> None:
        file: TextIO = self.writer._file
        file.write(text)
        file.flush()
