"""The score cache: a tree scored once is not scored again, in this experiment or another; the baseline runs aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project

#: The same change as GOOD_AGENT, made another way: the tree is what counts, not the agent.
GOOD_AGENT_IN_PYTHON = (
    "python3 -c \"import pathlib; pathlib.Path('calc.py').write_text('def add(a, b):\\n    return a + b\\n')\""
)


def counted_spec(project: Project, log: Path, **variants: str) -> dict[str, Any]:
    """A spec whose score command first appends a line to ``log``: one line per suite run.

    ``log`` is outside the checkout, which only an unsandboxed suite can write.
    """
    spec = project.calc_spec(**variants)
    spec["score"]["baseline_runs"] = 2  # the counts are of the default's runs
    spec["sandbox"] = "none"
    spec["score"]["command"] = f'echo "$EXPLORE_TRIAL" >> {log} && ' + spec["score"]["command"]
    return spec


def runs(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def scores(project: Project, experiment: str) -> dict[str, tuple[Any, ...]]:
    return {
        name: (t["score"], {n: c["outcome"] for n, c in t["tests"]["cases"].items()}, t["verdicts"])
        for name, t in project.trials(experiment).items()
    }


def cases(project: Project, experiment: str) -> dict[str, Any]:
    """Each trial's outcomes with their durations: equal only when taken from the same run."""
    return {name: t["tests"]["cases"] for name, t in project.trials(experiment).items()}


def test_the_same_trees_are_scored_once_across_experiments(
    calc_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = tmp_path_factory.mktemp("counts") / "suite-runs.log"
    spec = calc_project.variants(counted_spec(calc_project, log, good=GOOD_AGENT, bad=BAD_AGENT))

    first = calc_project.explore("--variants", spec, "-n", "2", experiment="one")
    assert first.ret == 0, first.stdout.str()
    assert sorted(runs(log)) == ["bad", "baseline.1", "baseline.2", "good"]
    # On a line of its own, not after xdist's "[100%]".
    first.stdout.fnmatch_lines(["explore one: baseline scored: 0/3 tests pass*(2 runs)*"])
    assert not any(t["score_cached"] for t in calc_project.trials("one").values())
    assert calc_project.trials("one")["good"]["score"] == 1.0

    # Another experiment over the same trees (one made by another agent): the suite does not run at all.
    other = calc_project.variants(
        counted_spec(calc_project, log, good=GOOD_AGENT_IN_PYTHON, bad=BAD_AGENT), "variants-two.yaml"
    )
    second = calc_project.explore("--variants", other, "-n", "2", experiment="two")
    assert second.ret == 0, second.stdout.str()
    assert len(runs(log)) == 4
    assert scores(calc_project, "two") == scores(calc_project, "one")
    assert cases(calc_project, "two") == cases(calc_project, "one")
    assert all(t["score_cached"] for t in calc_project.trials("two").values())
    second.stdout.fnmatch_lines(["*baseline cached: 0/3 tests pass*(2 runs)*", "*good*done (score cached)*"])
    summary = (calc_project.experiment_dir("two") / "results" / "summary.md").read_text()
    assert "(score cached)" in summary
    log_text = (calc_project.experiment_dir("two") / "results" / "good_tests.log").read_text()
    assert "scored by one/good" in log_text

    # A rerun (agents run again, baseline read again) runs the suite zero more times.
    (calc_project.experiment_dir("one") / "results" / "baseline.json").unlink()
    again = calc_project.explore("--variants", spec, "--explore-rerun", "-n", "2", experiment="one")
    assert again.ret == 0, again.stdout.str()
    assert len(runs(log)) == 4
    again.stdout.fnmatch_lines(["*baseline cached*"])
    assert scores(calc_project, "one") == scores(calc_project, "two")

    # --explore-no-cache scores everything again, and the scores are the same.
    fresh = calc_project.explore("--variants", other, "--explore-no-cache", "-n", "2", experiment="three")
    assert fresh.ret == 0, fresh.stdout.str()
    assert sorted(runs(log)[4:]) == ["bad", "baseline.1", "baseline.2", "good"]
    assert not any(t["score_cached"] for t in calc_project.trials("three").values())
    assert scores(calc_project, "three") == scores(calc_project, "one")


def test_concurrent_trials_of_one_tree_score_it_once(
    calc_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Three trials at once write the same tree: one scores it while the others wait on its key, then reuse it."""
    log = tmp_path_factory.mktemp("counts") / "suite-runs.log"
    spec = counted_spec(calc_project, log, a=GOOD_AGENT, b=GOOD_AGENT, c=GOOD_AGENT_IN_PYTHON)
    spec["max_concurrent"] = 3
    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "3", experiment="same")
    assert result.ret == 0, result.stdout.str()
    trial_runs = [r for r in runs(log) if not r.startswith("baseline")]
    assert len(trial_runs) == 1, runs(log)
    trials = calc_project.trials("same")
    assert sorted(t["score_cached"] for t in trials.values()) == [False, True, True]
    assert len({json.dumps(t["tests"]["cases"], sort_keys=True) for t in trials.values()}) == 1
    entries = list((calc_project.path / ".data" / "parallel_explorer" / ".cache" / "scores").glob("*.json"))
    assert len(entries) == 2  # the baseline's and the trials' tree
    assert all(json.loads(e.read_text())["schema"] == 2 for e in entries)  # 2: outcomes from the reporter


def test_agents_start_while_the_baseline_is_scored(
    calc_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The baseline's suite is slow; the trial's agent starts long before it is done, and is still judged."""
    log = tmp_path_factory.mktemp("counts") / "suite-runs.log"
    spec = counted_spec(calc_project, log, good=GOOD_AGENT)
    spec["score"]["command"] = 'case "$EXPLORE_TRIAL" in baseline*) sleep 3;; esac; ' + spec["score"]["command"]
    result = calc_project.explore("--variants", calc_project.variants(spec), "-p", "no:xdist", experiment="bg")
    assert result.ret == 0, result.stdout.str()
    good = calc_project.trials("bg")["good"]
    baseline_saved = (calc_project.experiment_dir("bg") / "results" / "baseline.json").stat().st_mtime
    assert good["steps"]["agent"]["started"] < baseline_saved - 2.5
    assert good["verdicts"]["fixed"] == 3


def test_score_cache_setting_is_validated(calc_project: Project) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["score"]["cache"] = "sometimes"
    result = calc_project.explore("--variants", calc_project.variants(spec))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*score.cache: expected true or false, got 'sometimes'*"])


def test_installing_upgrading_or_reinstalling_a_distribution_changes_what_the_key_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_parallel_explore.scoring import scorecache

    def installed() -> str:
        scorecache._installed.cache_clear()
        return scorecache._installed()

    monkeypatch.syspath_prepend(tmp_path)
    before = installed()
    (tmp_path / "lib-1.0.dist-info").mkdir()
    with_lib = installed()
    (tmp_path / "lib-1.0.dist-info").rename(tmp_path / "lib-1.1.dist-info")
    upgraded = installed()
    (tmp_path / "lib-1.1.dist-info").rmdir()
    (tmp_path / "lib-1.1.dist-info").mkdir()
    reinstalled = installed()
    assert len({before, with_lib, upgraded, reinstalled}) == 4
    assert installed() == reinstalled
    scorecache._installed.cache_clear()
