"""``worktree.keep``: which finished trials keep their worktree; everything else works from the branch."""

from __future__ import annotations

import pytest

from tests.explore_testing import GOOD_AGENT, Project


def worktree_folders(project: Project) -> set[str]:
    folder = project.experiment_dir() / "worktrees"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def listed_worktrees(project: Project) -> list[str]:
    """The worktrees git still knows of, apart from the main checkout (none may be left dangling)."""
    listing = project.git("worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")][1:]


@pytest.mark.parametrize(
    ("keep", "left"),
    [("all", {"good", "broken"}), ("failed", {"broken"}), ("none", set())],
    ids=["all", "failed", "none"],
)
def test_keep_decides_which_worktrees_are_left(calc_project: Project, keep: str, left: set[str]) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT, broken=f"{GOOD_AGENT} && exit 3")
    spec["worktree"] = {"keep": keep}
    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()  # broken's agent failed

    trials = calc_project.trials()
    assert (trials["good"]["status"], trials["broken"]["status"]) == ("done", "agent_failed")
    assert worktree_folders(calc_project) == left
    assert listed_worktrees(calc_project) == []  # private repositories, not worktrees of the user's
    for name in left:  # a kept folder's own git, made by the plugin, shows the agent's work against the base
        changed = calc_project.git("-C", str(calc_project.experiment_dir() / "worktrees" / name), "status", "--short")
        assert changed == " M calc.py\n"
    # Both branches hold the work, whether or not the folder stayed.
    for name in ("good", "broken"):
        shown = calc_project.git("show", f"explore/calc/{name}:calc.py")
        assert shown == "def add(a, b):\n    return a + b\n"


def test_with_keep_none_results_report_adopt_and_cleanup_work_from_the_branches(calc_project: Project) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT, noop="true")
    spec["worktree"] = {"keep": "none"}
    assert calc_project.explore("--variants", calc_project.variants(spec)).ret == 0
    assert worktree_folders(calc_project) == set()

    report = (calc_project.experiment_dir() / "results" / "report.html").read_text()
    assert "+    return a + b" in report  # the diff comes from the saved patch, not the worktree
    results = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-results")
    assert results.ret == 0
    results.stdout.fnmatch_lines(["*| 1 | good | done | 1.000 | 3/3 |*"])
    cleanup = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-cleanup")
    assert cleanup.ret == 0, cleanup.stderr.str()
    cleanup.stdout.fnmatch_lines(["explore calc: removed 0 worktrees/branches"])

    adopted = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-adopt", "best")
    assert adopted.ret == 0, adopted.stderr.str()
    assert (calc_project.path / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_with_keep_none_a_trial_stopped_at_scoring_resumes_from_its_branch(calc_project: Project) -> None:
    gate = calc_project.path.parent / "scoring-fails"
    gate.touch()
    invocations = calc_project.path.parent / "invocations"
    spec = calc_project.calc_spec(good=f"echo good >> {invocations} && {GOOD_AGENT}")
    spec["sandbox"] = "none"  # the agent writes its invocation log outside its worktree
    spec["worktree"] = {"keep": "none"}
    spec["score"]["setup"] = f"test ! -e {gate}"
    spec_file = calc_project.variants(spec)
    assert calc_project.explore("--variants", spec_file).ret == pytest.ExitCode.TESTS_FAILED
    first = calc_project.trials()["good"]
    assert first["status"] == "error" and "score.setup failed" in first["reason"]
    assert worktree_folders(calc_project) == set()  # removed as soon as the branch held the work

    gate.unlink()
    assert calc_project.explore("--variants", spec_file).ret == 0
    good = calc_project.trials()["good"]
    assert (good["status"], good["score"]) == ("done", 1.0)
    assert "resumed after the agent step" in good["flags"]
    assert invocations.read_text() == "good\n"  # the agent ran once: its work came from the branch
    assert worktree_folders(calc_project) == set()


def test_an_unknown_keep_setting_is_a_usage_error(calc_project: Project) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["worktree"] = {"keep": "some"}
    result = calc_project.explore("--variants", calc_project.variants(spec))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*worktree.keep: expected 'all' or 'failed' or 'none', got 'some'*"])


def test_a_rerun_replaces_a_worktree_holding_only_what_the_plugin_left(calc_project: Project) -> None:
    # A tracked hold-out (hidden from the agent) and set-up files: the plugin's doing, not the user's changes.
    calc_project.write({"holdout/test_hidden.py": "def test_hidden():\n    pass\n"})
    calc_project.commit("a hold-out test")
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["worktree"] = {"keep": "all", "setup": "touch set-up-ran"}
    spec["score"]["holdout"] = "holdout"
    variants = calc_project.variants(spec)
    assert calc_project.explore("--variants", variants).ret == 0
    worktree = calc_project.experiment_dir() / "worktrees" / "good"
    assert (worktree / "set-up-ran").exists() and not (worktree / "holdout").exists()

    rerun = calc_project.explore("--variants", variants, "--explore-rerun")
    assert rerun.ret == 0, rerun.stdout.str()
    assert not (calc_project.experiment_dir() / "kept").exists()
    assert not [f for f in calc_project.trials()["good"]["flags"] if f.startswith("kept:")]

    (worktree / "notes.txt").write_text("the user's own notes\n")  # a change of the user's is still kept
    moving = calc_project.explore("--variants", variants, "--explore-rerun")
    assert moving.ret == 0
    [moved] = (calc_project.experiment_dir() / "kept").iterdir()
    assert (moved / "notes.txt").read_text() == "the user's own notes\n"
    [flag] = [f for f in calc_project.trials()["good"]["flags"] if f.startswith("kept:")]
    assert "(notes.txt)" in flag
    moving.stdout.fnmatch_lines([f"explore calc: warning: good: *uncommitted changes (notes.txt); moved to {moved}"])

    # Cleanup leaves it, and says where it is.
    cleanup = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-cleanup")
    assert cleanup.ret == 0
    cleanup.stdout.fnmatch_lines([f"  {moved}: a worktree with changes of yours, moved aside by a rerun; left alone*"])
    assert (moved / "notes.txt").is_file()
