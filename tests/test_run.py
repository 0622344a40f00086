"""The whole experiment, end to end: variants as items, worktrees, command agents, scoring, report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_ranks_variants_and_writes_the_report(calc_project: Project, workers: list[str]) -> None:
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT))
    result = calc_project.explore("--variants", spec, *workers)

    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*explore calc: ranking*",
            "rank*variant*status*score*tests*",
            "1 *good *done *1.000 *3/3*",
            "2 *bad *done *0.333 *1/3*",
        ]
    )
    result.assert_outcomes(passed=2)
    trials = calc_project.trials()
    assert [trials["good"]["rank"], trials["bad"]["rank"]] == [1, 2]
    assert calc_project.results()["schema"] == 1
    assert calc_project.results()["best"] == "good"
    # Each test's own outcome is kept, by node id, for test-by-test comparison.
    assert trials["bad"]["tests"]["cases"] == {
        "tests/test_calc.py::test_add": {"outcome": "failed", "duration": pytest.approx(0, abs=1)},
        "tests/test_calc.py::test_add_zero": {"outcome": "passed", "duration": pytest.approx(0, abs=1)},
        "tests/test_calc.py::TestNegative::test_negative": {"outcome": "failed", "duration": pytest.approx(0, abs=1)},
    }
    results_dir = calc_project.experiment_dir() / "results"
    summary = (results_dir / "summary.md").read_text()
    assert "| 1 | good | done | 1.000 | 3/3 |" in summary
    assert "git merge explore/calc/good" in summary
    assert "return a + b" in (results_dir / "good.patch").read_text()
    # The agent's change is committed on the trial's branch, from the base commit.
    base = calc_project.git("rev-parse", "main").strip()
    assert calc_project.git("merge-base", base, "explore/calc/good").strip() == base
    assert "return a + b" in calc_project.git("show", "explore/calc/good:calc.py")
    # The main checkout is untouched, and the data directory does not show as untracked.
    assert "NotImplementedError" in (calc_project.path / "calc.py").read_text()
    assert calc_project.git("status", "--porcelain") == ""


def test_scores_equal_a_test_run_by_hand_in_each_worktree(calc_project: Project) -> None:
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT))
    assert calc_project.explore("--variants", spec, "-n", "2").ret == 0

    for name, trial in calc_project.trials().items():
        worktree = Path(trial["worktree"])
        by_hand = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests", "--junitxml=hand.xml"],
            cwd=worktree,
            capture_output=True,
            text=True,
        )
        from pytest_parallel_explore.scoring.suite import parse_junit

        hand = parse_junit((worktree / "hand.xml").read_bytes())
        assert (trial["tests"]["passed"], trial["tests"]["failed"]) == (hand.passed, hand.failed), (
            name,
            by_hand.stdout,
        )


def test_only_the_trials_are_collected(calc_project: Project) -> None:
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT))
    result = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--variants", spec, "--collect-only", "-q")
    assert result.ret == 0
    assert result.stdout.lines[0] == "explore::calc[good]"
    assert "test_calc" not in result.stdout.str()


def test_a_failing_agent_fails_alone(calc_project: Project) -> None:
    spec = calc_project.variants(
        calc_project.calc_spec(
            good=GOOD_AGENT,
            crashes=f"{GOOD_AGENT}; exit 3",
            missing="no-such-agent-anywhere {prompt}",
        )
    )
    result = calc_project.explore("--variants", spec, "-n", "2")

    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.re_match_lines(
        [re.escape("FAILED explore::calc[crashes] - agent_failed: agent exited with status 3")]
    )
    result.stdout.re_match_lines([re.escape("FAILED explore::calc[missing] - agent_failed: agent command not found")])
    trials = calc_project.trials()
    assert trials["good"]["rank"] == 1
    # The crashed agent still changed the worktree: it is scored and flagged.
    assert trials["crashes"]["status"] == "agent_failed"
    assert trials["crashes"]["score"] == 1.0
    assert "scored after the agent failed" in trials["crashes"]["flags"]
    assert trials["missing"]["score"] is None
    summary = (calc_project.experiment_dir() / "results" / "summary.md").read_text()
    assert "agent command not found: no-such-agent-anywhere" in summary
    retry = "pytest --explore calc --variants variants.yaml --explore-retry-failed"
    assert f"{retry} 'explore::calc[crashes]' 'explore::calc[missing]'" in summary


def test_progress_file_shows_each_step(calc_project: Project) -> None:
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT))
    assert calc_project.explore("--variants", spec).ret == 0
    progress = json.loads((calc_project.experiment_dir() / "results" / "good_progress.json").read_text())
    assert progress["status"] == "done"
    assert set(progress["steps"]) == {"worktree", "agent", "score"}
    steps, started, finished = progress["steps"], progress["started_at"], progress["finished_at"]
    # The steps ran in order, inside the trial's time, and each one's time was measured, not left at 0.
    assert started <= steps["worktree"]["started"] <= steps["agent"]["started"] <= steps["score"]["started"] <= finished
    assert all(0 < step["seconds"] <= finished - started for step in steps.values())


def test_with_repeats_each_prompt_names_its_own_worktree(calc_project: Project) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["repeat"] = 2
    assert calc_project.explore("--variants", calc_project.variants(spec)).ret == 0

    results = calc_project.experiment_dir() / "results"
    for trial, other in (("good.1", "good.2"), ("good.2", "good.1")):
        prompt = (results / f"{trial}_prompt.md").read_text()
        worktree = calc_project.trials()[trial]["worktree"]
        assert worktree.endswith(f"worktrees/{trial}") and Path(worktree).is_dir()
        assert worktree in prompt
        assert f"worktrees/{other}" not in prompt


def test_an_agent_that_runs_the_tests_leaves_no_bytecode_in_its_work(
    calc_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # as on most machines
    spec = calc_project.calc_spec(tester=f"{GOOD_AGENT} && {{python}} -m pytest -q -p no:cacheprovider tests")
    result = calc_project.explore("--variants", calc_project.variants(spec))
    assert result.ret == 0, result.stdout.str()
    trial = calc_project.trials()["tester"]
    assert calc_project.git("diff", "--name-only", "main", trial["branch"]).split() == ["calc.py"]
    assert (trial["status"], trial["tampering"], trial["score"]) == ("done", [], 1.0)
