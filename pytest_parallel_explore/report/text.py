"""The results as text: the ranking table of the terminal and of ``summary.md``, and ``summary.md`` itself."""

from __future__ import annotations

from ..templating import render
from .model import Results
from .ranking import RankRow, ranking

#: Metrics the summary shows in their own words rather than in the metrics line.
BUILTIN_METRICS = ("tests_pass_rate", "tests_passed", "tests_failed", "tests_errors", "tests_skipped")

TABLE_HEADER = ("rank", "variant", "status", "score", "tests", "fixed/broken", "diff", "agent", "tokens", "cost")
#: Shown where a row has no value.
NONE = "-"


def table_cells(row: RankRow) -> tuple[str, ...]:
    """A row of the ranking as the terminal and ``summary.md`` show it, one string per column."""
    tests = row.shown_tests
    diff = row.diff
    return (
        str(row.rank) if row.rank is not None else NONE,
        row.name,
        # A trial's warnings (tampering, not judged) go with its status; the baseline's flaky count is in tests.
        row.status + "".join(f" ({w})" for w in row.warnings if row.is_trial),
        f"{row.score:.3f}" if row.score is not None else NONE,
        f"{tests[0]}/{tests[1]}" + (f" ({row.flaky} flaky)" if row.flaky else "") if tests else NONE,
        f"{row.verdicts['fixed']}/{row.verdicts['broken']}" if row.verdicts else NONE,
        f"+{diff.insertions}/-{diff.deletions} ({diff.files_changed} files)" if diff else NONE,
        f"{row.agent_seconds:.1f}s" if row.agent_seconds is not None else NONE,
        f"{row.tokens:,}" if row.tokens else NONE,
        f"${row.cost_usd:.2f}" if row.cost_usd else NONE,
    )


def format_table(results: Results) -> list[str]:
    """The ranked table as aligned text lines, for the terminal."""
    rows = [TABLE_HEADER, *(table_cells(row) for row in ranking(results))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def terminal_lines(results: Results) -> list[str]:
    """What the end of a run prints: the table, then the comparisons (with repeats) and the race."""
    lines = format_table(results)
    if results.repeated:
        lines += ["", *(c.sentence for c in results.comparisons)]
    race = results.race
    if race is not None:
        state = race.state
        outcome = f"stopped: {state.reason}" if state.decided else f"not decided: {state.reason}"
        lines += ["", f"race: {race.trials_total} of at most {race.trials_max} trials; {outcome}"]
        lines += [f"  {elimination.sentence}" for elimination in state.eliminated]
    lines += [f"warning: {rate.warning}" for rate in results.infrastructure_errors if rate.warning]
    return lines


def render_summary(results: Results) -> str:
    """``summary.md``: the ranking, the statistics and the race, then a section per trial."""
    return render(
        "summary.md.j2",
        results=results,
        info=results.info,
        header=TABLE_HEADER,
        builtin_metrics=BUILTIN_METRICS,
        table=[table_cells(row) for row in ranking(results)],
    )
