"""The typed results: built from records, written and read back unchanged, and checked key by key on reading."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pytest_parallel_explore.model.baseline import Baseline
from pytest_parallel_explore.model.record import SKIPPED_BY_RACE, Status, TestStats, TrialRecord
from pytest_parallel_explore.model.spec import RaceSpec
from pytest_parallel_explore.report.fields import ResultsError
from pytest_parallel_explore.report.matrix import build_matrix
from pytest_parallel_explore.report.merge import pooled_baseline
from pytest_parallel_explore.report.model import ExperimentInfo, Results
from pytest_parallel_explore.report.ranking import ranking
from pytest_parallel_explore.report.results import build_results
from pytest_parallel_explore.report.text import table_cells
from pytest_parallel_explore.scoring.baseline import judge

BASE = "0123456789abcdef0123456789abcdef01234567"
T_OK, T_BAD = "tests/test_m.py::test_ok", "tests/test_m.py::test_bad"
BASELINE = Baseline(
    "k",
    BASE,
    2,
    {T_OK: "passed", T_BAD: "failed"},
    frozenset(),
    TestStats(passed=1, failed=1),
    frozenset({T_OK, T_BAD}),
)


def record(name: str, outcomes: dict[str, str] | None, status: Status = Status.DONE, **fields: Any) -> TrialRecord:
    """A trial ``<variant>.<round>``; with ``outcomes``, run and judged against the baseline as a trial is."""
    variant, _, k = name.partition(".")
    trial = TrialRecord(
        experiment="demo",
        name=name,
        variant=variant,
        round=int(k or 1),
        status=status,
        branch=f"explore/demo/{name}",
        **fields,
    )
    trial.attempts.append({"status": status.value, "reason": None, "started": 1.0, "finished": 2.0, "cost": 0.0})
    if outcomes is not None:
        values = list(outcomes.values())
        trial.tests = TestStats(
            passed=values.count("passed"),
            failed=values.count("failed"),
            cases={n: {"outcome": o, "duration": 0.1} for n, o in outcomes.items()},
        )
        trial.verdicts, trial.broken_tests = judge(BASELINE, trial.tests)
        trial.score = trial.tests.pass_rate
    return trial


@pytest.fixture
def results() -> Results:
    """Two variants raced over two rounds, a failed trial, an unjudged one, a missing one and one the race skipped."""
    info = ExperimentInfo(
        experiment="demo",
        source="variants.yaml",
        base="HEAD",
        base_commit=BASE,
        variant_names=["fixer", "breaker"],
        race=RaceSpec(max=3),
    )
    records = [
        record("fixer.1", {T_OK: "passed", T_BAD: "passed"}),
        record("fixer.2", {T_OK: "passed", T_BAD: "passed"}),
        record("breaker.1", {T_OK: "failed", T_BAD: "failed"}),
        record("breaker.2", {T_OK: "failed"}, Status.AGENT_FAILED, reason="exit 3"),
        record("fixer.3", None, Status.SKIPPED, skipped_by=SKIPPED_BY_RACE),
        record("breaker.3", None, Status.ERROR, reason="git failed"),
    ]
    unjudged = record("other", {}, reason="scored 0: the test suite collected no tests")
    unjudged.tests.problem, unjudged.score = "collected no tests", 0.0
    return build_results(info, [*records, unjudged], BASELINE)


def test_results_read_back_as_they_were_written(results: Results) -> None:
    data = results.to_json()
    again = Results.from_json(copy.deepcopy(data))

    assert again.to_json() == data
    assert data["schema"] == 1 and data["best"] == "fixer.1" and data["best_variant"] == "fixer"
    assert data["missing"] == ["breaker.3"]
    assert data["status_counts"] == {"done": 4, "agent_failed": 1, "skipped": 1, "error": 1}
    assert data["race"]["skipped"] == ["fixer.3"] and data["race"]["trials"] == {"fixer": 2, "breaker": 2}
    assert [v["name"] for v in data["variants"]] == ["fixer", "breaker", "other"]
    assert [c["other"] for c in data["comparisons"]] == ["breaker", "other"]


def test_failed_unjudged_missing_and_retryable_are_the_records_own(results: Results) -> None:
    by_name = {t.name: t for t in results.trials}
    assert [t.name for t in results.failed] == ["other", "breaker.2"]  # failed or not judged, in ranking order
    assert [t.name for t in results.missing] == ["breaker.3"]
    assert results.retry_command == (
        "pytest --explore demo --variants variants.yaml --explore-retry-failed 'explore::demo[other]' "
        "'explore::demo[breaker.2]'"
    )
    assert results.rerun_command == "pytest --explore demo --variants variants.yaml 'explore::demo[breaker.3]'"
    # A plain run reruns what has no outcome and what the race skipped; --explore-retry-failed also the failed.
    plain = {name for name, t in by_name.items() if t.retryable(retry_failed=False)}
    assert plain == {"breaker.3", "fixer.3"}
    assert {name for name, t in by_name.items() if t.retryable(retry_failed=True)} == plain | {"breaker.2", "other"}
    # It selects the failed (unjudged included: the retry command names them) and the missing trials;
    # the race decides again about the skipped one in a plain run.
    assert {name for name, t in by_name.items() if t.retry_selected} == {"breaker.2", "breaker.3", "other"}


def test_the_ranking_rows_are_built_once_and_formatted_for_the_terminal(results: Results) -> None:
    rows = {row.name: row for row in ranking(results)}
    assert table_cells(rows["baseline"])[:5] == ("-", "baseline", "base commit", "0.500", "1/2")
    assert table_cells(rows["fixer.1"])[2:6] == ("done", "1.000", "2/2", "1/0")
    assert rows["fixer.1"].interval is not None  # fixer ran twice: its interval goes with its rows
    assert table_cells(rows["breaker.3"])[:6] == ("-", "breaker.3", "missing (error)", "-", "-", "-")
    assert rows["other"].warnings == ("not judged",) and rows["other"].kind == "bad"
    assert table_cells(rows["other"])[2] == "done (not judged)"  # the terminal has no notes column
    assert table_cells(rows["baseline"])[2] == "base commit"
    assert rows["breaker.2"].kind == "bad" and rows["breaker.3"].kind == "muted"


def test_the_matrix_shows_the_verdicts_stored_when_the_trial_was_judged(results: Results) -> None:
    trials = [t for t in results.trials if t.name in ("fixer.1", "breaker.1")]
    stored = build_matrix(trials, BASELINE)
    assert {r.test: r.cells for r in stored.rows} == {
        T_OK: ["passed", "kept", "broken"],
        T_BAD: ["failed", "fixed", "still_failing"],
    }

    # A record saved before verdicts were stored shows its plain outcomes.
    older = copy.deepcopy(trials)
    for trial in older:
        trial.tests.verdicts = {}
    plain = build_matrix(older, BASELINE)
    assert {r.test: r.cells for r in plain.rows} == {
        T_OK: ["passed", "passed", "failed"],
        T_BAD: ["failed", "passed", "failed"],
    }


def wrong(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """``data`` with the value at ``path`` (keys and list indices) replaced; ``...`` deletes the key."""
    changed = copy.deepcopy(data)
    target = changed
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("schema",), 2, "not a results.json of schema 1"),
        (("experiment",), ..., "experiment: missing"),
        (("base_commit",), 7, "base_commit: expected text, got int 7"),
        (("trial_names",), "fixer.1", "trial_names: expected a list of names, got 'fixer.1'"),
        (("trials",), {}, "trials: expected a list of trial records, got dict"),
        (("trials", 2), "breaker.1", "trials[2]: expected a trial record (a mapping), got 'breaker.1'"),
        (("trials", 0, "name"), "../x", "trials[0].name: unsafe name '../x'"),
        (
            ("trials", 1, "status"),
            "exploded",
            "trials[1]: not a trial record of this plugin: 'exploded' is not a valid",
        ),
        (("variants", 0, "mean"), "high", "variants[0].mean: expected a number, got 'high'"),
        (("variants", 1, "n"), True, "variants[1].n: expected an integer, got bool True"),
        (
            ("comparisons", 0, "test"),
            "t-test",
            "comparisons[0].test: expected one of 'fisher', 'permutation', got 't-test'",
        ),
        (("comparisons", 1, "significant"), "yes", "comparisons[1].significant: expected true or false, got 'yes'"),
        (("race", "trials"), ["fixer"], "race.trials: expected a mapping of names to counts, got list"),
        (("race", "intervals", 0, "low"), ..., "race.intervals[0].low: missing"),
        (
            ("race", "decided"),
            "soon",
            "race.decided: expected one of null, 'one_left', 'equivalent', 'max', got 'soon'",
        ),
        (("baseline",), {"runs": 2}, "baseline: not a baseline of this plugin"),
    ],
)
def test_reading_names_the_key_that_is_wrong(results: Results, path: tuple[Any, ...], value: Any, message: str) -> None:
    data = results.to_json()
    assert data["race"]["intervals"], "the race compared the variants"
    with pytest.raises(ResultsError) as error:
        Results.from_json(wrong(data, path, value))
    assert str(error.value).startswith(message)


def test_pooled_baselines_count_every_run_and_call_a_test_flaky_when_the_jobs_disagree() -> None:
    def job(cases: dict[str, str], flaky: frozenset[str] = frozenset()) -> Baseline:
        return Baseline("key", "abc", 2, cases, flaky, TestStats(passed=1, failed=1), frozenset(cases) - flaky)

    pooled = pooled_baseline(
        [
            job({"t::a": "passed", "t::b": "failed", "t::c": "passed"}),
            job({"t::a": "passed", "t::b": "passed", "t::c": "passed"}, frozenset({"t::c"})),
            job({"t::a": "passed", "t::b": "failed"}),
        ]
    )

    assert pooled.runs == 6
    # b passed in one job and failed in the others; c was flaky within a job and is missing from another.
    assert pooled.flaky == {"t::b", "t::c"}
    assert pooled.cases == {"t::a": "passed", "t::b": "failed", "t::c": "passed"}


def test_a_trial_from_its_checkpoint_says_so_once() -> None:
    info = ExperimentInfo(experiment="demo", source="variants.yaml", base="HEAD", base_commit=BASE)
    reused = record("fixer", {T_OK: "passed", T_BAD: "passed"}, from_checkpoint=True)
    [_, row] = ranking(build_results(info, [reused], BASELINE))
    assert (row.status, row.warnings) == ("done (checkpoint)", ())
