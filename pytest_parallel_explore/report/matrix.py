"""The report's test x trial matrix and its diffs, as data for ``templates/report.html.j2``.

Each cell of the matrix is a class (a verdict against the baseline, an
outcome, "flaky", "absent"): the page colours and filters on it.  A patch is
parsed into lines the page marks as added, deleted, hunk or file header,
cut to what a page can hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..model.baseline import Baseline
from ..model.record import TrialRecord

#: Lines of one trial's patch shown in the page; the rest stays in ``results/<trial>.patch``.
MAX_DIFF_LINES = 1000
#: Characters of one diff line shown (minified files make lines of megabytes).
MAX_LINE_CHARS = 400

#: What each cell class of the matrix means: its legend, and its tooltip in the page.
CELL_MEANINGS = {
    "fixed": "fixed: failing at the base commit, passes now",
    "broken": "broken: passes at the base commit, not now",
    "kept": "kept: passes at the base commit and now",
    "still_failing": "still failing: failing at the base commit and now",
    "added": "added: a test the base commit does not have; passes",
    "added_failed": "added: a test the base commit does not have; fails",
    "removed": "removed: at the base commit, not run now",
    "flaky": "flaky: its outcome changed between the baseline runs (not judged)",
    "passed": "passed",
    "failed": "failed",
    "error": "error",
    "skipped": "skipped",
    "absent": "not run",
    "none": "no test results",
}

#: The matrix's legend: verdicts first, then the cells that have none.
LEGEND = (
    (
        "Verdict",
        (
            ("fixed", "fixed"),
            ("broken", "broken"),
            ("kept", "kept"),
            ("still_failing", "still failing"),
            ("added", "added"),
            ("added_failed", "added, failing"),
            ("removed", "removed"),
        ),
    ),
    (
        "No verdict",
        (
            ("flaky", "flaky at base"),
            ("passed", "passed"),
            ("failed", "failed"),
            ("error", "error"),
            ("skipped", "skipped"),
            ("absent", "not run"),
            ("none", "no results"),
        ),
    ),
)

_OUTCOMES = frozenset({"passed", "failed", "error", "skipped"})


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    anchor: str | None


@dataclasses.dataclass(frozen=True)
class MatrixRow:
    test: str
    tags: str  # space-separated: flaky, broken, fixed, differs (what the filters select on)
    cells: list[str]  # one class per column (a key of CELL_MEANINGS): a verdict, an outcome, "flaky", ...

    @property
    def path(self) -> str:
        """The node id up to its first ``::`` (the file), which the page shortens first."""
        return self.test.partition("::")[0] if "::" in self.test else ""

    @property
    def name(self) -> str:
        """The rest of the node id, from ``::``: the part that must stay readable."""
        return self.test[len(self.path) :]


@dataclasses.dataclass(frozen=True)
class Matrix:
    columns: list[Column]
    rows: list[MatrixRow]
    counts: Mapping[str, int]  # rows per tag


@dataclasses.dataclass(frozen=True)
class DiffLine:
    kind: str  # a (added), d (deleted), h (hunk), f (file header) or "" (context)
    text: str


def anchor(trial: str) -> str:
    return f"trial-{trial}"  # trial names are path- and ref-safe, so they are safe ids too


def build_matrix(trials: Sequence[TrialRecord], baseline: Baseline | None) -> Matrix:
    """The test x trial matrix: a row per test ever seen, a column for the baseline and each trial.

    A trial's cell is the test's verdict against the baseline (``fixed``, ``broken``, ...) as stored
    when the trial was judged, or its plain outcome where there is no verdict (no baseline, a flaky
    test, a test skipped at base, a record saved before verdicts were stored).
    """
    flaky: set[str] = set(baseline.flaky) if baseline else set()
    for t in trials:
        flaky.update(t.tests.flaky)
    base_cases: Mapping[str, str] = baseline.cases if baseline else {}

    tests: dict[str, None] = dict.fromkeys(base_cases)  # ordered: the base suite's order, then new ones
    tests.update(dict.fromkeys(sorted(flaky)))
    for t in trials:
        tests.update(dict.fromkeys(t.tests.cases))

    columns = [Column("baseline", None)] if baseline else []
    columns += [Column(t.name, anchor(t.name)) for t in trials]

    rows = []
    counts = dict.fromkeys(("broken", "fixed", "flaky", "differs"), 0)
    for test in tests:
        is_flaky = test in flaky
        cells: list[str] = []
        outcomes: set[str | None] = set()
        if baseline:
            before = _outcome({"outcome": base_cases[test]}) if test in base_cases else None
            cells.append("flaky" if is_flaky else before or "absent")
            if not is_flaky:
                outcomes.add(before)
        for t in trials:
            if not t.tests.cases:
                cells.append("none")
                continue
            outcome = _outcome(t.tests.cases.get(test))
            outcomes.add(outcome)
            # Flaky in any run shown here: no verdict, as at the base (runs merged from CI may differ).
            verdict = t.tests.verdicts.get(test) if baseline and not is_flaky else None
            if verdict == "added" and outcome != "passed":
                cells.append("added_failed")
            else:
                cells.append(verdict or outcome or "absent")
        tags = [
            tag
            for tag, present in (
                ("flaky", is_flaky),
                ("broken", "broken" in cells),
                ("fixed", "fixed" in cells),
                ("differs", len(outcomes) > 1),
            )
            if present
        ]
        for tag in tags:
            counts[tag] += 1
        rows.append(MatrixRow(test, " ".join(tags), cells))
    return Matrix(columns, rows, counts)


def _outcome(case: Mapping[str, Any] | None) -> str | None:
    """A case's outcome as one of the four the page knows (it is also a class name, unquoted)."""
    if case is None:
        return None
    outcome = case.get("outcome")
    return outcome if outcome in _OUTCOMES else "error"


def parse_patch(patch: str) -> list[DiffLine]:
    """A unified diff, line by line, with the kind of each line for colouring."""
    lines = []
    in_header = False
    for line in patch.splitlines():
        if line.startswith("diff --git"):
            in_header = True
            kind = "f"
        elif line.startswith("@@"):
            in_header = False
            kind = "h"
        elif in_header:
            kind = "f"  # index, mode, ---/+++ lines: not additions or deletions
        elif line.startswith("+"):
            kind = "a"
        elif line.startswith("-"):
            kind = "d"
        else:
            kind = ""
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + f" … ({len(line) - MAX_LINE_CHARS} more characters)"
        lines.append(DiffLine(kind, line))
    return lines
