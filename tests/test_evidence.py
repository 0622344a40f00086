"""Evidence: verdicts against the baseline, flaky tests, protected tests, isolation, real-project settings."""

from __future__ import annotations

import json
import shutil
import statistics
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project

#: At the base commit a and b work, c and d do not.
MODULE = textwrap.dedent(
    """
    def a():
        return 1

    def b():
        return 2

    def c():
        raise NotImplementedError

    def d():
        raise NotImplementedError
    """
)
TESTS = textwrap.dedent(
    """
    import m

    def test_a():
        assert m.a() == 1

    def test_b():
        assert m.b() == 2

    def test_c():
        assert m.c() == 3

    def test_d():
        assert m.d() == 4
    """
)


def sed(path: str, *edits: str) -> str:
    """An agent command applying sed edits to ``path``."""
    return " && ".join(f"sed -i '{edit}' {path}" for edit in edits)


@pytest.fixture
def verdict_project(project: Project) -> Project:
    project.write(
        {"m.py": MODULE, "tests/test_m.py": TESTS, ".gitignore": "variants*.yaml\nrunpytest-*\nstdout\nstderr\n"}
    )
    project.commit()
    return project


def spec_for(project: Project, **variants: str) -> dict[str, Any]:
    spec = project.calc_spec(**variants)
    spec["task"] = "Make every function in m.py work."
    spec["score"]["baseline_runs"] = 2  # the flaky test fails in the baseline's second run only
    return spec


def test_each_test_gets_its_verdict_against_the_baseline(verdict_project: Project) -> None:
    fix_c = sed("m.py", "/def c/{n;s/raise NotImplementedError/return 3/}")
    fix_d = sed("m.py", "/def d/{n;s/raise NotImplementedError/return 4/}")
    break_a = sed("m.py", "/def a/{n;s/return 1/return 0/}")
    add_test = "printf 'def test_new():\\n    assert True\\n' > tests/test_new.py"
    remove_b = (
        "python3 -c \"import re,pathlib; p=pathlib.Path('tests/test_m.py'); "
        "p.write_text(re.sub(r'def test_b.*?\\n\\n', '', p.read_text(), flags=re.S))\""
    )
    spec = spec_for(
        verdict_project,
        fixer=fix_c,
        breaker=f"{break_a} && {fix_d} && {add_test}",
        remover=remove_b,
    )
    result = verdict_project.explore("--variants", verdict_project.variants(spec), "-n", "2")
    assert result.ret == 0, result.stdout.str()

    trials = verdict_project.trials()
    # Worked out by hand from the edits above: base passes a and b, fails c and d.
    assert trials["fixer"]["verdicts"] == {
        "fixed": 1,
        "kept": 2,
        "broken": 0,
        "still_failing": 1,
        "added": 0,
        "removed": 0,
    }
    assert trials["breaker"]["verdicts"] == {
        "fixed": 1,
        "kept": 1,
        "broken": 1,
        "still_failing": 1,
        "added": 1,
        "removed": 0,
    }
    # Deleting a test of the base commit is tampering: it is put back before scoring.
    assert trials["remover"]["tampering"] == ["tests/test_m.py"]
    assert trials["remover"]["verdicts"] == {
        "fixed": 0,
        "kept": 2,
        "broken": 0,
        "still_failing": 2,
        "added": 0,
        "removed": 0,
    }
    assert trials["breaker"]["broken_tests"] == ["tests/test_m.py::test_a"]
    baseline = verdict_project.results()["baseline"]
    assert baseline["cases"] == {
        "tests/test_m.py::test_a": "passed",
        "tests/test_m.py::test_b": "passed",
        "tests/test_m.py::test_c": "failed",
        "tests/test_m.py::test_d": "failed",
    }
    result.stdout.fnmatch_lines(["*baseline scored: 2/4 tests pass at *(2 runs)*", "-*baseline*base commit*0.500*2/4*"])
    summary = (verdict_project.experiment_dir() / "results" / "summary.md").read_text()
    assert "**broken tests**: `tests/test_m.py::test_a`" in summary

    # The baseline is reused while the base commit and the score settings are the same.
    again = verdict_project.explore("--variants", verdict_project.variants(spec))
    again.stdout.fnmatch_lines(["*baseline reused: 2/4 tests pass*"])


def test_weights_can_use_verdicts(verdict_project: Project) -> None:
    spec = spec_for(verdict_project, fixer=sed("m.py", "/def c/{n;s/raise NotImplementedError/return 3/}"))
    spec["score"]["weights"] = {"fixed": 1.0, "broken": -10.0}
    assert verdict_project.explore("--variants", verdict_project.variants(spec)).ret == 0
    assert verdict_project.trials()["fixer"]["score"] == 1.0


def test_a_test_flaky_at_the_base_is_detected_and_left_out(verdict_project: Project) -> None:
    verdict_project.write(
        {
            "tests/test_flaky.py": textwrap.dedent(
                """
                import os

                def test_alternates():
                    # Passes in the baseline's first run, fails in its second. (Keyed by the run, not by a
                    # state file: the baseline is scored while trials score, so runs interleave.)
                    assert os.environ["EXPLORE_TRIAL"] != "baseline.2"
                """
            )
        }
    )
    verdict_project.commit("flaky test")
    spec = spec_for(verdict_project, fixer=sed("m.py", "/def c/{n;s/raise NotImplementedError/return 3/}"))
    result = verdict_project.explore("--variants", verdict_project.variants(spec))
    assert result.ret == 0

    baseline = verdict_project.results()["baseline"]
    assert baseline["flaky"] == ["tests/test_flaky.py::test_alternates"]
    fixer = verdict_project.trials()["fixer"]
    assert fixer["tests"]["flaky"] == ["tests/test_flaky.py::test_alternates"]
    assert sum(fixer["verdicts"].values()) == 4  # the flaky test has no verdict
    assert fixer["tests"]["pass_rate"] == 0.75  # a, b, c of the four non-flaky tests
    summary = (verdict_project.experiment_dir() / "results" / "summary.md").read_text()
    assert "- `tests/test_flaky.py::test_alternates`" in summary


def test_tampering_with_protected_tests_is_undone_and_flagged(verdict_project: Project) -> None:
    verdict_project.write({"holdout/test_hidden.py": "import m\n\ndef test_d_hidden():\n    assert m.d() == 4\n"})
    verdict_project.commit("hold-out test")
    cheat = sed("tests/test_m.py", "s/assert m.c() == 3/assert True/")
    fake_holdout = "mkdir -p holdout && printf 'def test_d_hidden():\\n    assert True\\n' > holdout/test_hidden.py"
    spec = spec_for(verdict_project, cheater=f"{cheat} && {fake_holdout}")
    spec["score"].update(
        {
            "protect": ["tests/**"],
            "holdout": "holdout",
            "command": "{python} -m pytest -q -p no:cacheprovider tests holdout",
        }
    )
    result = verdict_project.explore("--variants", verdict_project.variants(spec))
    assert result.ret == 0

    cheater = verdict_project.trials()["cheater"]
    assert cheater["tampering"] == ["holdout", "tests/test_m.py"]
    # Scored on the restored tests: c and d still fail, the hold-out test is the real one.
    assert cheater["tests"]["cases"]["tests/test_m.py::test_c"]["outcome"] == "failed"
    assert cheater["tests"]["cases"]["holdout/test_hidden.py::test_d_hidden"]["outcome"] == "failed"
    assert cheater["verdicts"]["fixed"] == 0
    summary = (verdict_project.experiment_dir() / "results" / "summary.md").read_text()
    assert (
        "**tampering** (protected files, hold-out or repository changed; undone before scoring): "
        "`holdout`, `tests/test_m.py`" in summary
    )
    report = (verdict_project.experiment_dir() / "results" / "report.html").read_text()
    assert "tampering" in report.lower() and "tests/test_m.py" in report


def test_an_agent_writing_into_the_main_checkout_is_undone_and_reported(verdict_project: Project) -> None:
    before = (verdict_project.path / "m.py").read_bytes()
    escape = f"printf 'def a():\\n    return 99\\n' > {verdict_project.path}/m.py"
    spec = spec_for(verdict_project, escaper=escape)
    spec["sandbox"] = "none"  # only without a sandbox can the write happen; then it is undone and reported
    result = verdict_project.explore("--variants", verdict_project.variants(spec))

    assert (verdict_project.path / "m.py").read_bytes() == before, result.stdout.str()
    assert "main checkout: m.py changed" in verdict_project.trials()["escaper"]["tampering"]
    assert verdict_project.results()["checkout_changes"] == []  # put back before the run's own comparison
    summary = (verdict_project.experiment_dir() / "results" / "summary.md").read_text()
    assert "`main checkout: m.py changed`" in summary or "main checkout: m.py changed" in summary


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_in_the_sandbox_an_agent_cannot_write_into_the_main_checkout(verdict_project: Project) -> None:
    before = (verdict_project.path / "m.py").read_bytes()
    escape = f"printf 'def a():\\n    return 99\\n' > {verdict_project.path}/m.py"
    spec = spec_for(verdict_project, escaper=escape)
    spec["sandbox"] = "bwrap"
    result = verdict_project.explore("--variants", verdict_project.variants(spec))

    assert (verdict_project.path / "m.py").read_bytes() == before, result.stdout.str()
    assert verdict_project.results()["checkout_changes"] == []


def test_real_project_settings_copy_setup_and_trial_variables(calc_project: Project) -> None:
    calc_project.write({".env": "SECRET=from-main\n"})  # untracked: only copied, never committed
    record = "echo $EXPLORE_TRIAL $EXPLORE_TRIAL_INDEX $EXPLORE_PORT_BASE $(cat .env) > {root}-seen-$EXPLORE_TRIAL"
    spec = calc_project.calc_spec(
        first=f"{record.format(root=calc_project.path)}; {GOOD_AGENT}",
        second=f"{record.format(root=calc_project.path)}; {GOOD_AGENT}",
    )
    spec["worktree"] = {"copy": [".env"], "setup": "touch set-up-ran"}
    spec["sandbox"] = "none"  # the agents write what they saw beside the project, which a sandbox forbids
    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "2")
    assert result.ret == 0, result.stdout.str()

    seen = calc_project.path.parent / f"{calc_project.path.name}-seen-"
    assert Path(f"{seen}first").read_text().split() == ["first", "0", "20000", "SECRET=from-main"]
    assert Path(f"{seen}second").read_text().split() == ["second", "1", "20100", "SECRET=from-main"]
    for name in ("first", "second"):
        committed = calc_project.git("show", "--name-only", "--format=", f"explore/calc/{name}").split()
        assert committed == ["calc.py"]  # neither the copied .env nor what the set-up made is the agent's work
        assert (Path(calc_project.trials()[name]["worktree"]) / "set-up-ran").exists()


def test_an_experiment_budget_skips_trials_not_yet_started(calc_project: Project) -> None:
    spec = calc_project.calc_spec(first=GOOD_AGENT, second=GOOD_AGENT)
    spec["max_cost_usd"] = 1.0
    progress = calc_project.experiment_dir() / "results" / "spent_progress.json"
    progress.parent.mkdir(parents=True)
    # A trial of this experiment that already spent the budget (as a real Claude trial records it).
    spent = {
        "schema": 1,
        "experiment": "calc",
        "name": "spent",
        "variant": "spent",
        "status": "done",
        "agent": {"cost_usd": 1.5},
    }
    progress.write_text(json.dumps(spent))
    spec["variants"]["spent"] = {"description": "already run", "agent": {"run": GOOD_AGENT}}
    result = calc_project.explore("--variants", calc_project.variants(spec), "-k", "first or second", "-rs")

    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*budget of $1.00 is spent ($1.50)*"])
    assert {t["status"] for n, t in calc_project.trials().items() if n != "spent"} == {"skipped"}


def test_repeats_give_statistics_equal_to_those_computed_by_hand(calc_project: Project) -> None:
    # Known success rates: always 5/5; "sometimes" fails its 2nd and 4th trials; never 0/5.
    sometimes = f'case "$EXPLORE_TRIAL" in *.2|*.4) {BAD_AGENT} ;; *) {GOOD_AGENT} ;; esac'
    spec = calc_project.calc_spec(always=GOOD_AGENT, sometimes=sometimes, never=BAD_AGENT)
    spec["repeat"] = 5
    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "2")
    assert result.ret == 0, result.stdout.str()

    results = calc_project.results()
    assert results["best_variant"] == "always"
    assert sorted(t["name"] for t in results["trials"] if t["variant"] == "sometimes") == [
        f"sometimes.{k}" for k in range(1, 6)
    ]
    variants = {v["name"]: v for v in results["variants"]}
    bad = 1 / 3  # the bad agent's add(a, b) = a * b passes one of the three tests
    expected_scores = {"always": [1.0] * 5, "sometimes": [1, bad, 1, bad, 1], "never": [bad] * 5}
    solved = {"always": 5, "sometimes": 3, "never": 0}
    for name, scores in expected_scores.items():
        v = variants[name]
        assert v["k"] == 5 and v["solved"] == solved[name]
        assert v["mean"] == pytest.approx(statistics.fmean(scores))
        assert v["sd"] == pytest.approx(statistics.stdev(scores))
        assert v["ci_low"] <= v["mean"] <= v["ci_high"]
        # pass@1 = c/n; with k = n, pass@k is "any solved" and pass^k "all solved".
        assert v["pass_at_1"] == pytest.approx(solved[name] / 5)
        assert v["pass_at_k"] == (1.0 if solved[name] else 0.0)
        assert v["pass_hat_k"] == (1.0 if solved[name] == 5 else 0.0)
    # Exact solved-rate intervals: 0 of 5 -> [0, 1 - 0.025 ** (1/5)], 5 of 5 -> [0.025 ** (1/5), 1].
    assert (variants["never"]["solved_ci_low"], variants["never"]["solved_ci_high"]) == (
        0,
        pytest.approx(0.5218, abs=1e-4),
    )
    assert (variants["always"]["solved_ci_low"], variants["always"]["solved_ci_high"]) == (
        pytest.approx(0.4782, abs=1e-4),
        1,
    )

    comparisons = {c["other"]: c for c in results["comparisons"]}
    # Scores are not all 0 or 1, so each trial's score is one observation of a permutation test. "always" (5 x 1)
    # vs "never" (5 x 1/3): 2 of the C(10, 5) = 252 splits are as extreme. vs "sometimes" (1, 1/3, 1, 1/3, 1):
    # the splits that put both 1/3s on one side, C(8, 5) + C(8, 3) = 112 of 252. Holm over two comparisons.
    assert {c["test"] for c in comparisons.values()} == {"permutation"}
    assert comparisons["never"]["p_value"] == pytest.approx(2 / 252)
    assert comparisons["never"]["p_adjusted"] == pytest.approx(4 / 252)
    assert comparisons["sometimes"]["p_value"] == comparisons["sometimes"]["p_adjusted"] == pytest.approx(112 / 252)
    holm = "(permutation test on trial scores; Holm-adjusted over 2 comparisons)"
    assert comparisons["never"]["sentence"] == f"always beats never: +0.67 [0.67, 0.67], p = 0.016 {holm}"
    assert comparisons["sometimes"]["sentence"].startswith("always vs sometimes: no significant difference at k = 5")
    result.stdout.fnmatch_lines([f"always beats never: +0.67 [[]0.67, 0.67[]], p = 0.016 {holm}"])

    # The bootstrap intervals are seeded: rebuilding the report gives the very same numbers.
    again = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-results")
    assert again.ret == 0
    assert calc_project.results()["variants"] == results["variants"]
    summary = (calc_project.experiment_dir() / "results" / "summary.md").read_text()
    assert "| sometimes | 5 | 0.733 |" in summary
