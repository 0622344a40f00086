"""The race over saved records: every finished attempt counts, the declared max is kept, errors are reported."""

from __future__ import annotations

from pytest_parallel_explore.evidence import racing
from pytest_parallel_explore.evidence.errors import error_rates
from pytest_parallel_explore.model.record import SKIPPED_BY_RACE, Status, TestStats, TrialRecord
from pytest_parallel_explore.model.spec import RaceSpec
from pytest_parallel_explore.report.model import ExperimentInfo
from pytest_parallel_explore.report.results import build_results
from pytest_parallel_explore.report.text import render_summary, terminal_lines

A, B = "tests/test_m.py::test_a", "tests/test_m.py::test_b"


def trial(name: str, *runs: tuple[Status, float | None, list[str]]) -> TrialRecord:
    """A trial of a race declared with max 12 whose attempts ran as ``runs`` (status, score, judged tests passed)."""
    variant, _, round_number = name.partition(".")
    record = TrialRecord(experiment="demo", name=name, variant=variant, round=int(round_number), race_horizon=12)
    for status, score, passed in runs:
        record.status, record.score = status, score
        record.tests = TestStats(
            verdicts={A: "fixed" if A in passed else "still_failing", B: "kept" if B in passed else "broken"}
        )
        record.end_attempt(0.0)
    return record


DONE, FAILED, ERROR = Status.DONE, Status.AGENT_FAILED, Status.ERROR


def test_a_retried_failure_still_counts_as_a_failure() -> None:
    records = [
        trial("good.1", (DONE, 1.0, [A, B])),
        trial("good.2", (FAILED, 0.0, []), (DONE, 1.0, [A, B])),  # retried: both attempts count, in order
        trial("flaky.1", (ERROR, None, []), (DONE, 0.5, [A])),  # the pipeline broke first: no outcome, left out
        trial("flaky.2", (DONE, 0.5, [B])),
    ]
    scores, tests = racing.race_outcomes(records, ["good", "flaky"], "tests")
    assert scores == {"good": [1.0, 0.0, 1.0], "flaky": [0.5, 0.5]}
    assert tests["good"] == [{A: True, B: True}, {A: False, B: False}, {A: True, B: True}]
    assert tests["flaky"] == [{A: True, B: False}, {A: False, B: True}]
    solved, _ = racing.race_outcomes(records, ["good", "flaky"], "solved")
    assert solved == {"good": [1.0, 0.0, 1.0], "flaky": [0.0, 0.0]}
    # The variants' statistics count them the same way.
    info = ExperimentInfo(experiment="demo", base_commit="0" * 40, variant_names=["good", "flaky"])
    stats = {v.name: v for v in build_results(info, records).variants}
    assert (stats["good"].k, stats["good"].solved, stats["good"].scores.mean) == (3, 2, 2 / 3)
    assert stats["good"].retried == ["good.2"] and stats["flaky"].k == 2


def test_a_trial_the_race_skipped_keeps_its_earlier_attempts() -> None:
    skipped = trial("good.2", (FAILED, 0.0, []))
    skipped.status, skipped.skipped_by = Status.SKIPPED, SKIPPED_BY_RACE  # skipped on a later run: no new attempt
    scores, _ = racing.race_outcomes([trial("good.1", (DONE, 1.0, [A, B])), skipped], ["good"], "score")
    assert scores == {"good": [1.0, 0.0]}


def test_a_race_whose_max_was_raised_falls_back_to_villes_threshold_and_says_so() -> None:
    records = [trial(f"{v}.{k}", (DONE, s, [])) for k in range(1, 9) for v, s in (("good", 1.0), ("bad", 0.3))]
    as_declared = racing.race_of(records, ["good", "bad"], RaceSpec(max=12))
    assert as_declared.winner == "good" and "simulated for 12 rounds" in as_declared.method
    raised = racing.race_of(records, ["good", "bad"], RaceSpec(max=20))
    assert raised.method.endswith("max raised from 12 to 20 after the race began")
    assert raised.trials["bad"] > as_declared.trials["bad"]


def test_a_variant_whose_attempts_break_the_pipeline_more_often_is_flagged() -> None:
    records = [trial(f"crashy.{k}", (ERROR, None, []), (ERROR, None, []), (DONE, 1.0, [A, B])) for k in range(1, 7)]
    records += [trial(f"steady.{k}", (DONE, 1.0, [A, B])) for k in range(1, 13)]
    interrupted = trial("steady.13", (DONE, 1.0, [A, B]))
    interrupted.attempts.insert(0, {"status": "error", "reason": "interrupted during agent (KeyboardInterrupt)"})
    rates = {r.variant: r for r in error_rates([*records, interrupted])}
    assert (rates["crashy"].errors, rates["crashy"].attempts) == (12, 18)
    assert (rates["steady"].errors, rates["steady"].attempts) == (0, 14)  # an interruption is not the variant's
    assert rates["steady"].warning is not None and rates["crashy"].warning is not None
    assert rates["crashy"].warning.startswith("crashy had infrastructure errors in 12 of 18 attempts (67%)")

    info = ExperimentInfo(experiment="demo", base_commit="0" * 40, variant_names=["crashy", "steady"])
    results = build_results(info, [*records, interrupted])
    assert results.to_json()["infrastructure_errors"][0]["errors"] == 12
    summary = render_summary(results)
    assert "- crashy: 12 of 18 attempts ended in an infrastructure error (67%)" in summary
    assert "> **Warning:** crashy had infrastructure errors in 12 of 18 attempts" in summary
    assert any(line.startswith("warning: crashy had infrastructure errors") for line in terminal_lines(results))


def test_alike_error_rates_raise_no_warning() -> None:
    records = [trial(f"{v}.{k}", (ERROR, None, []), (DONE, 1.0, [A])) for v in ("a", "b") for k in range(1, 5)]
    assert [r.warning for r in error_rates(records)] == [None, None]
