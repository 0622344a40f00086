"""``report.html``: the comparison as one self-contained page for a browser.

Everything the page needs is inline (CSS, SVG and a little vanilla JavaScript), and
it refers to nothing outside itself, so opening it makes no request of any kind: it
can be read from a CI artifact, an e-mail or an air-gapped machine.  It shows the
header, the ranked table with the baseline row (and confidence-interval bars when
variants were repeated), the test x trial matrix (filtered and sorted in the
browser) and a section per trial with its diff and the git commands to inspect or
adopt it.

This module builds the view of a :class:`Results` (the ranking's rows as the page
shows them, cell classes, bar coordinates); the markup is
``templates/report.html.j2``, rendered with autoescaping on, so test ids, task text
and diff lines always reach the page as text.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..model.paths import ExperimentPaths
from ..model.record import TrialRecord
from ..templating import render
from .matrix import CELL_MEANINGS, LEGEND, MAX_DIFF_LINES, DiffLine, anchor, build_matrix, parse_patch
from .model import Results
from .ranking import RankRow, baseline_row, status_kind, trial_rows
from .statistics import ComparisonEntry, VariantStats
from .transcript import LABELS, TranscriptView, read_transcripts

#: Width of the score and confidence-interval bars, in CSS pixels.
BAR_WIDTH = 110
_BAR_PAD = 4
#: Shown where there is no value; and the minus sign of deletions.
DASH, MINUS = "\u2013", "\u2212"


@dataclasses.dataclass(frozen=True)
class Axis:
    """Maps scores to x coordinates in a bar; every bar of one table shares it, so bars compare."""

    low: float
    high: float

    @classmethod
    def around(cls, values: Iterable[float | None], low: float = 0.0, high: float = 1.0) -> Axis:
        """An axis from ``low`` to ``high``, widened to hold every value (weighted scores leave 0..1)."""
        present = [v for v in values if v is not None]
        return cls(min([low, *present]), max([high, *present]))

    def x(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        return round(_BAR_PAD + (value - self.low) / span * (BAR_WIDTH - 2 * _BAR_PAD), 1)


@dataclasses.dataclass(frozen=True)
class Bar:
    """An inline SVG bar: from the axis' zero to ``value``, with an optional interval whisker."""

    zero: float
    value: float
    ci_low: float | None
    ci_high: float | None
    label: str

    @property
    def left(self) -> float:
        return min(self.zero, self.value)

    @property
    def width(self) -> float:
        return abs(self.value - self.zero)


def _bar(axis: Axis, value: float, ci: tuple[float, float] | None, label: str) -> Bar:
    return Bar(
        zero=axis.x(min(max(0.0, axis.low), axis.high)),
        value=axis.x(value),
        ci_low=axis.x(ci[0]) if ci else None,
        ci_high=axis.x(ci[1]) if ci else None,
        label=label,
    )


@dataclasses.dataclass(frozen=True)
class Row:
    """A row of the ranking (:class:`RankRow`) as the page shows it; ``sort`` holds the numbers the page sorts by."""

    rank: str
    name: str
    anchor: str | None
    status: str
    status_kind: str  # ok | bad | warn | muted: the badge's colour
    score: str
    bar: Bar | None
    tests: str
    verdicts: Mapping[str, int]
    diff: str
    agent: str
    tokens: str
    cost: str
    warnings: list[str]
    sort: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class TrialView:
    """What one trial's section shows, beside its record."""

    trial: TrialRecord
    anchor: str
    status_kind: str
    diff_lines: list[DiffLine]
    diff_hidden: int  # lines left out of the page
    diff_open: bool
    patch_name: str
    patch_found: bool
    commands: list[tuple[str, str]]  # (what it does, the command)
    figures: list[tuple[str, str]]
    transcript: TranscriptView | None


@dataclasses.dataclass(frozen=True)
class Live:
    """A running experiment: the records of the running trials, the names of those waiting, the page's reload."""

    running: list[TrialRecord]
    waiting: list[str]
    refresh_seconds: int


def render_report(results: Results, paths: ExperimentPaths, live: Live | None = None) -> str:
    """``report.html`` for ``results``, with each trial's diff and transcript read from ``results/``."""
    patches = {}
    for trial in results.trials:
        patch = read_patch(paths.trial_file(trial.name, ".patch"))
        if patch is not None:
            patches[trial.name] = patch
    return render_html(results, patches, live, read_transcripts(paths, [t.name for t in results.trials]))


#: Bytes of a trial's patch read for the page: an agent's patch can be any size (the file keeps all of it).
MAX_PATCH_BYTES = 1 << 20


def read_patch(path: Path) -> str | None:
    """The start of the patch file at ``path`` (at most :data:`MAX_PATCH_BYTES`, whole lines); None if there is none.

    A longer patch is cut, and its first line then says so.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PATCH_BYTES + 1)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        return None
    if len(data) <= MAX_PATCH_BYTES:
        return data.decode("utf-8", errors="replace")
    kept = data[:MAX_PATCH_BYTES].rpartition(b"\n")[0].decode("utf-8", errors="replace")
    note = f"(the patch has {size:,} bytes; the first {MAX_PATCH_BYTES:,} are shown, all of it is in {path.name})"
    return f"{note}\n{kept}\n"


def render_html(
    results: Results,
    patches: Mapping[str, str],
    live: Live | None = None,
    transcripts: Mapping[str, TranscriptView] | None = None,
) -> str:
    """The page for ``results``, with the trials' patches (and transcripts) given by trial name."""
    transcripts = transcripts or {}
    baseline = results.baseline
    base_row = baseline_row(baseline) if baseline else None
    rows = trial_rows(results)
    axis = Axis.around(
        [row.score for row in ([base_row] if base_row else []) + rows]
        + [
            value
            for v in results.variants
            for value in (v.scores.mean, v.scores.ci_low, v.scores.ci_high, v.scores.min, v.scores.max)
        ]
    )
    return render(
        "report.html.j2",
        results=results,
        info=results.info,
        best=results.best_trial,
        baseline=baseline,
        baseline_row=_html_row(base_row, axis) if base_row else None,
        rows=[_html_row(row, axis) for row in rows],
        variant_stats=[(v, _variant_bar(v, axis)) for v in results.variants],
        comparisons=[(c, _difference_bar(c, results.comparisons)) for c in results.comparisons],
        matrix=build_matrix(results.trials, baseline),
        trials=[
            _trial_view(results, t, patches.get(t.name), len(results.trials), transcripts.get(t.name))
            for t in results.trials
        ],
        entry_labels=LABELS,
        cell_meanings=CELL_MEANINGS,
        legend=LEGEND,
        bar_width=BAR_WIDTH,
        fmt=fmt,
        live=_live_view(live),
    )


@dataclasses.dataclass(frozen=True)
class Running:
    """A running trial as the live page lists it."""

    name: str
    step: str
    elapsed: str
    agent: str  # turns, tokens and cost so far, when the agent reports them


def _live_view(live: Live | None) -> Mapping[str, Any] | None:
    if live is None:
        return None
    running = []
    for t in live.running:
        agent = t.agent
        tokens = agent.input_tokens + agent.output_tokens
        figures = [
            f"{agent.turns} turns" if agent.turns else "",
            f"{tokens:,} tokens" if tokens else "",
            f"${agent.cost_usd:.4f}" if agent.cost_usd else "",
        ]
        elapsed = _duration(max(0.0, time.time() - t.started_at)) if t.started_at else DASH
        running.append(Running(t.name, t.status.value, elapsed, ", ".join(f for f in figures if f)))
    return {"running": running, "waiting": live.waiting, "refresh": live.refresh_seconds}


def fmt(value: Any, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``, or an en dash when there is none."""
    if value is None or value == "":
        return DASH
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _html_row(row: RankRow, axis: Axis) -> Row:
    """A row of the ranking as the page shows it, with its score bar (and the variant's interval when repeated)."""
    bar = None
    if row.score is not None and not row.is_trial:
        bar = _bar(axis, row.score, None, f"baseline pass rate {row.score:.3f}")
    elif row.score is not None:
        label = f"score {row.score:.3f}"
        if row.interval:
            low, high = row.interval
            label += f"; variant {row.variant}: mean {fmt(row.variant_mean)}, 95% CI [{low:.3f}, {high:.3f}]"
        bar = _bar(axis, row.score, row.interval, label)
    tests, diff = row.shown_tests, row.diff
    return Row(
        rank=str(row.rank) if row.rank is not None else DASH,
        name=row.name,
        anchor=anchor(row.name) if row.is_trial else None,
        status=row.status,
        status_kind=row.kind,
        score=fmt(row.score),
        bar=bar,
        tests=f"{tests[0]}/{tests[1]}" if tests else DASH,
        verdicts=row.verdicts,
        diff=f"+{diff.insertions} {MINUS}{diff.deletions} ({diff.files_changed})" if diff else DASH,
        agent=_duration(row.agent_seconds) if row.agent_seconds is not None else DASH,
        tokens=f"{row.tokens:,}" if row.tokens else DASH,
        cost=f"${row.cost_usd:.2f}" if row.cost_usd else DASH,
        warnings=list(row.warnings),
        sort=row.sort,
    )


def _variant_bar(stats: VariantStats, axis: Axis) -> Bar:
    s = stats.scores
    return _bar(
        axis,
        s.mean,
        (s.ci_low, s.ci_high),
        f"{stats.name}: mean {s.mean:.3f}, 95% CI [{s.ci_low:.3f}, {s.ci_high:.3f}]",
    )


def _difference_bar(comparison: ComparisonEntry, all_comparisons: Sequence[ComparisonEntry]) -> Bar:
    c = comparison.result
    extent = max(
        [
            abs(v)
            for other in all_comparisons
            for v in (other.result.difference, other.result.ci_low, other.result.ci_high)
            if v
        ]
        or [1.0]
    )
    label = f"difference {c.difference:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
    return _bar(Axis(-extent, extent), c.difference, (c.ci_low, c.ci_high), label)


def _trial_view(
    results: Results, t: TrialRecord, patch: str | None, count: int, transcript: TranscriptView | None
) -> TrialView:
    lines = parse_patch(patch) if patch else []
    agent, tests = t.agent, t.tests
    base = (t.base_commit or results.info.base_commit)[:12]
    commands = []
    if t.branch and t.commit:
        commands.append(("see the code", f"git diff {base}...{t.branch}"))
        if t.score is not None:
            commands.append(("adopt it", f"pytest --explore {results.info.experiment} --explore-adopt {t.name}"))
            commands.append(("or merge by hand", f"git merge {t.branch}"))
    tokens = [
        f"{n:,} {label}"
        for n, label in (
            (agent.input_tokens, "in"),
            (agent.output_tokens, "out"),
            (agent.cache_read_tokens, "cache read"),
            (agent.cache_write_tokens, "cache write"),
        )
        if n
    ]
    figures = [
        ("agent", (agent.backend or DASH) + (f" ({agent.model})" if agent.model else "")),
        ("time", _duration(agent.seconds)),
        ("turns", str(agent.turns or DASH)),
        ("tokens", ", ".join(tokens) or DASH),
        ("cost", f"${agent.cost_usd:.4f}" if agent.cost_usd else DASH),
    ]
    if agent.cli_cost_usd is not None:
        figures.append(("CLI's own cost", f"${agent.cli_cost_usd:.4f}"))
    figures = [(label, value) for label, value in figures if value != DASH or label in ("agent", "time")]
    if agent.exit_code is not None:
        figures.append(("exit code", str(agent.exit_code)))
    if agent.stop_reason:
        figures.append(("stopped", agent.stop_reason))
    if t.score is not None:
        figures.append(
            (
                "tests",
                f"{tests.passed} passed, {tests.failed} failed, {tests.errors} errors, "
                f"{tests.skipped} skipped ({_duration(tests.seconds)})",
            )
        )
    return TrialView(
        trial=t,
        anchor=anchor(t.name),
        status_kind=status_kind(t),
        diff_lines=lines[:MAX_DIFF_LINES],
        diff_hidden=max(0, len(lines) - MAX_DIFF_LINES),
        diff_open=count <= 4 or results.ranks[t.name] == 1,
        patch_name=str(Path("results") / f"{t.name}.patch"),
        patch_found=patch is not None,
        commands=commands,
        figures=figures,
        transcript=transcript,
    )
