"""``report.html``: the comparison as one self-contained page for a browser.

Everything the page needs is inline (CSS, SVG and a little vanilla JavaScript), and
it refers to nothing outside itself, so opening it makes no request of any kind: it
can be read from a CI artifact, an e-mail or an air-gapped machine.  It shows the
header, the ranked table with the baseline row (and confidence-interval bars when
variants were repeated), the test x trial matrix (filtered and sorted in the
browser) and a section per trial with its diff and the git commands to inspect or
adopt it.

This module builds the view (numbers, cell classes, bar coordinates); the markup is
``templates/report.html.j2``, rendered with autoescaping on, so test ids, task text
and diff lines always reach the page as text.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..names import retry_command
from ..paths import ExperimentPaths
from ..record import Status
from ..templating import render
from .matrix import CELL_MEANINGS, LEGEND, MAX_DIFF_LINES, DiffLine, anchor, build_matrix, parse_patch

#: Width of the score and confidence-interval bars, in CSS pixels.
BAR_WIDTH = 110
_BAR_PAD = 4
#: Shown where there is no value; and the minus sign of deletions.
DASH, MINUS = "\u2013", "\u2212"

_PASSING_STATUSES = {Status.DONE.value}
_FAILED_STATUSES = {Status.AGENT_FAILED.value, Status.TIMEOUT.value}  # an error is missing, not failed
_UNFINISHED_STATUSES = {s.value for s in Status if not s.finished}


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
    """One line of the ranked table; ``sort`` holds the numbers the page sorts by."""

    rank: str
    name: str
    anchor: str | None
    status: str
    status_kind: str  # ok | bad | muted: the badge's colour
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

    trial: Mapping[str, Any]
    anchor: str
    status_kind: str
    diff_lines: list[DiffLine]
    diff_hidden: int  # lines left out of the page
    diff_open: bool
    patch_name: str
    patch_found: bool
    commands: list[tuple[str, str]]  # (what it does, the command)
    figures: list[tuple[str, str]]


def render_report(results: Mapping[str, Any], paths: ExperimentPaths, live: Mapping[str, Any] | None = None) -> str:
    """``report.html`` for ``results``, with each trial's diff read from ``results/<trial>.patch``.

    ``live`` (while the experiment runs): the records of the running trials,
    the names of those waiting, and how often the page reloads itself.
    """
    patches = {}
    for trial in results["trials"]:
        path = paths.trial_file(trial["name"], ".patch")
        try:
            patches[trial["name"]] = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
    return render_html(results, patches, live)


def render_html(results: Mapping[str, Any], patches: Mapping[str, str], live: Mapping[str, Any] | None = None) -> str:
    """The page for ``results``, with the trials' patches given by trial name (missing ones are said so)."""

    trials: list[Mapping[str, Any]] = results["trials"]
    baseline: Mapping[str, Any] | None = results.get("baseline") or None
    stats = [v for v in results.get("variants") or () if isinstance(v, Mapping)]
    comparisons = [c for c in results.get("comparisons") or () if isinstance(c, Mapping)]
    by_variant = {v.get("name"): v for v in stats}
    repeated = any(_int(v.get("n")) > 1 for v in stats)
    axis = Axis.around(
        [t.get("score") for t in trials]
        + [_float(v.get(key)) for v in stats for key in ("mean", "ci_low", "ci_high", "min", "max")]
        + ([baseline["tests"].get("pass_rate")] if baseline else [])
    )
    failed = [t for t in trials if is_failed(t)]
    missing = [t for t in trials if t["name"] in (results.get("missing") or ())]
    if live is not None:  # a trial still running has not failed yet
        failed = [t for t in failed if t["status"] not in _UNFINISHED_STATUSES]
    best = next((t for t in trials if t["name"] == results.get("best")), None)
    return render(
        "report.html.j2",
        results=results,
        best=best,
        baseline=baseline,
        baseline_row=_baseline_row(baseline, axis) if baseline else None,
        rows=_ranked_rows(trials, by_variant, axis),
        repeated=repeated,
        variant_stats=[(v, _variant_bar(v, axis)) for v in stats],
        comparisons=[(c, _difference_bar(c, comparisons)) for c in comparisons],
        matrix=build_matrix(trials, baseline),
        trials=[_trial_view(results, t, patches.get(t["name"]), len(trials)) for t in trials],
        failed=failed,
        retry_command=retry_command(dict(results), [t["name"] for t in failed], retry_failed=True) if failed else "",
        missing=missing,
        rerun_command=retry_command(dict(results), [t["name"] for t in missing]) if missing else "",
        race=results.get("race"),
        checkout_changes=list(results.get("checkout_changes") or ()),
        cell_meanings=CELL_MEANINGS,
        legend=LEGEND,
        bar_width=BAR_WIDTH,
        fmt=fmt,
        live=_live_view(live),
    )


def is_failed(trial: Mapping[str, Any]) -> bool:
    """A trial (as in ``results.json``) whose outcome is a failure: agent failed, timed out, or suite unjudged."""
    if Status(trial["status"]).failed:
        return True
    return trial["status"] == Status.DONE.value and bool(trial["tests"].get("problem"))


def status_text(trial: Mapping[str, Any]) -> str:
    """The status as the table shows it: "missing (error)" for a trial without an outcome, the attempt when retried."""
    status = Status(trial["status"])
    # A trial still running shows its step; one that ended without an outcome is missing.
    text = status.value if status.outcome or not status.finished else f"missing ({status.value})"
    if trial.get("from_checkpoint"):
        text += " (checkpoint)"
    attempts = len(trial.get("attempts", ()))
    if attempts > 1:
        text += f" (attempt {attempts})"
    if trial.get("score_cached"):
        text += " (score cached)"
    return text


@dataclasses.dataclass(frozen=True)
class Running:
    """A running trial as the live page lists it."""

    name: str
    step: str
    elapsed: str
    agent: str  # turns, tokens and cost so far, when the agent reports them


def _live_view(live: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if live is None:
        return None
    running = []
    for t in live.get("running") or ():
        agent = t.get("agent") or {}
        tokens = _int(agent.get("input_tokens")) + _int(agent.get("output_tokens"))
        figures = [
            f"{agent['turns']} turns" if agent.get("turns") else "",
            f"{tokens:,} tokens" if tokens else "",
            f"${agent['cost_usd']:.4f}" if agent.get("cost_usd") else "",
        ]
        started = t.get("started_at")
        elapsed = _duration(max(0.0, time.time() - float(started))) if started else DASH
        running.append(Running(t["name"], str(t["status"]), elapsed, ", ".join(f for f in figures if f)))
    return {"running": running, "waiting": list(live.get("waiting") or ()), "refresh": live.get("refresh_seconds", 2)}


def fmt(value: Any, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``, or an en dash when there is none."""
    if value is None or value == "":
        return DASH
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def _status_kind(trial: Mapping[str, Any]) -> str:
    if trial["status"] in _PASSING_STATUSES and not trial["tests"].get("problem"):
        return "ok"
    if trial["status"] in _UNFINISHED_STATUSES:
        return "warn"
    return "bad" if trial["status"] in _FAILED_STATUSES or trial["tests"].get("problem") else "muted"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _baseline_row(baseline: Mapping[str, Any], axis: Axis) -> Row:
    tests = baseline["tests"]
    flaky = len(baseline.get("flaky") or ())
    return Row(
        rank=DASH,
        name="baseline",
        anchor=None,
        status="base commit",
        status_kind="muted",
        score=fmt(tests["pass_rate"]),
        bar=_bar(axis, tests["pass_rate"], None, f"baseline pass rate {tests['pass_rate']:.3f}"),
        tests=f"{tests['passed']}/{tests['total']}",
        verdicts={},
        diff=DASH,
        agent=DASH,
        tokens=DASH,
        cost=DASH,
        warnings=[f"{flaky} flaky"] if flaky else [],
        sort={},
    )


def _ranked_rows(
    trials: Sequence[Mapping[str, Any]], by_variant: Mapping[Any, Mapping[str, Any]], axis: Axis
) -> list[Row]:
    rows = []
    for t in trials:
        tests, agent, diff = t["tests"], t["agent"], t["diff"]
        scored = t.get("score") is not None
        tokens = _int(agent.get("input_tokens")) + _int(agent.get("output_tokens"))
        stats = by_variant.get(t.get("variant"))
        ci = None
        if stats and _int(stats.get("n")) > 1 and stats.get("ci_low") is not None and stats.get("ci_high") is not None:
            ci = (float(stats["ci_low"]), float(stats["ci_high"]))
        label = f"score {t['score']:.3f}" if scored else ""
        if ci:
            mean = fmt(stats.get("mean") if stats else None)
            label += f"; variant {t.get('variant')}: mean {mean}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]"
        warnings = []
        if t.get("tampering"):
            warnings.append("tampering")
        if tests.get("problem"):
            warnings.append("not judged")
        if t.get("from_checkpoint"):
            warnings.append("checkpoint")
        rows.append(
            Row(
                rank=str(t["rank"]) if t.get("rank") is not None else DASH,
                name=t["name"],
                anchor=anchor(t["name"]),
                status=status_text(t),
                status_kind=_status_kind(t),
                score=fmt(t.get("score")),
                bar=_bar(axis, t["score"], ci, label) if scored else None,
                tests=f"{tests['passed']}/{tests['total']}" if scored else DASH,
                verdicts=(t.get("verdicts") or {}) if scored else {},
                diff=f"+{diff['insertions']} {MINUS}{diff['deletions']} ({diff['files_changed']})",
                agent=_duration(float(agent.get("seconds") or 0.0)),
                tokens=f"{tokens:,}" if tokens else DASH,
                cost=f"${agent['cost_usd']:.2f}" if agent.get("cost_usd") else DASH,
                warnings=warnings,
                sort={
                    "rank": float(t["rank"]) if t.get("rank") is not None else 1e9,
                    "score": float(t["score"]) if scored else -1e9,
                    "tests": float(tests["passed"]),
                    "diff": float(diff["insertions"] + diff["deletions"]),
                    "agent": float(agent.get("seconds") or 0.0),
                    "tokens": float(tokens),
                    "cost": float(agent.get("cost_usd") or 0.0),
                },
            )
        )
    return rows


def _variant_bar(stats: Mapping[str, Any], axis: Axis) -> Bar | None:
    mean, low, high = _float(stats.get("mean")), _float(stats.get("ci_low")), _float(stats.get("ci_high"))
    if mean is None:
        return None
    ci = (low, high) if low is not None and high is not None else None
    label = f"{stats.get('name')}: mean {mean:.3f}" + (f", 95% CI [{low:.3f}, {high:.3f}]" if ci else "")
    return _bar(axis, mean, ci, label)


def _difference_bar(comparison: Mapping[str, Any], all_comparisons: Sequence[Mapping[str, Any]]) -> Bar | None:
    difference = _float(comparison.get("difference"))
    if difference is None:
        return None
    extent = max(
        [abs(v) for c in all_comparisons for k in ("difference", "ci_low", "ci_high") if (v := _float(c.get(k)))]
        or [1.0]
    )
    axis = Axis(-extent, extent)
    low, high = _float(comparison.get("ci_low")), _float(comparison.get("ci_high"))
    ci = (low, high) if low is not None and high is not None else None
    label = f"difference {difference:+.3f}" + (f" [{low:+.3f}, {high:+.3f}]" if ci else "")
    return _bar(axis, difference, ci, label)


def _trial_view(results: Mapping[str, Any], t: Mapping[str, Any], patch: str | None, count: int) -> TrialView:
    lines = parse_patch(patch) if patch else []
    agent, tests = t["agent"], t["tests"]
    base = (t.get("base_commit") or results.get("base_commit") or "")[:12]
    commands = []
    if t.get("branch") and t.get("commit"):
        commands.append(("see the code", f"git diff {base}...{t['branch']}"))
        if t.get("score") is not None:
            commands.append(("adopt it", f"pytest --explore {results['experiment']} --explore-adopt {t['name']}"))
            commands.append(("or merge by hand", f"git merge {t['branch']}"))
    tokens = [
        f"{_int(agent.get(key)):,} {label}"
        for key, label in (
            ("input_tokens", "in"),
            ("output_tokens", "out"),
            ("cache_read_tokens", "cache read"),
            ("cache_write_tokens", "cache write"),
        )
        if agent.get(key)
    ]
    figures = [
        ("agent", str(agent.get("backend") or DASH) + (f" ({agent['model']})" if agent.get("model") else "")),
        ("time", _duration(float(agent.get("seconds") or 0.0))),
        ("turns", str(agent.get("turns") or DASH)),
        ("tokens", ", ".join(tokens) or DASH),
        ("cost", f"${agent['cost_usd']:.4f}" if agent.get("cost_usd") else DASH),
    ]
    figures = [(label, value) for label, value in figures if value != DASH or label in ("agent", "time")]
    if agent.get("exit_code") is not None:
        figures.append(("exit code", str(agent["exit_code"])))
    if agent.get("stop_reason"):
        figures.append(("stopped", str(agent["stop_reason"])))
    if t.get("score") is not None:
        figures.append(
            (
                "tests",
                f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
                f"{tests['skipped']} skipped ({_duration(float(tests.get('seconds') or 0.0))})",
            )
        )
    return TrialView(
        trial=t,
        anchor=anchor(t["name"]),
        status_kind=_status_kind(t),
        diff_lines=lines[:MAX_DIFF_LINES],
        diff_hidden=max(0, len(lines) - MAX_DIFF_LINES),
        diff_open=count <= 4 or t.get("rank") == 1,
        patch_name=str(Path("results") / f"{t['name']}.patch"),
        patch_found=patch is not None,
        commands=commands,
        figures=figures,
    )
