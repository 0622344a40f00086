"""The scored run pinned to the base: which tests are judged, the base's configuration, and agent text in Markdown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_parallel_explore.model.record import TestStats
from pytest_parallel_explore.repo import gitops
from pytest_parallel_explore.scoring import pinning, protect
from pytest_parallel_explore.scoring.baseline import _from_runs, judge
from pytest_parallel_explore.templating import markdown_code, markdown_text
from tests.explore_testing import Project

PASS, FAIL, SKIP, ERROR = (
    "tests/t.py::test_pass",
    "tests/t.py::test_fail",
    "tests/t.py::test_skip",
    "tests/t.py::test_err",
)
HIDDEN, HIDDEN_SKIP = "holdout/t.py::test_hidden", "holdout/t.py::test_hidden_skipped"


def stats(**outcomes: str) -> TestStats:
    return TestStats(cases={node: {"outcome": o, "duration": 0.0} for node, o in outcomes.items()})


BASE = {PASS: "passed", FAIL: "failed", SKIP: "skipped", ERROR: "error", HIDDEN: "failed", HIDDEN_SKIP: "skipped"}


def test_the_judged_tests_are_the_bases_that_ran_and_every_holdout_test() -> None:
    baseline = _from_runs("k", "abc", [stats(**BASE), stats(**BASE)], ["holdout"])

    assert baseline.judged == {PASS, FAIL, ERROR, HIDDEN, HIDDEN_SKIP}


@pytest.mark.parametrize("not_passed", ["skipped", "xfailed", "xpassed", "error", "failed", None])
def test_a_judged_test_counts_as_passed_only_when_it_passed(not_passed: str | None) -> None:
    baseline = _from_runs("k", "abc", [stats(**BASE)], ["holdout"])
    now = {PASS: "passed", FAIL: "passed", ERROR: "passed", HIDDEN: "passed", HIDDEN_SKIP: "passed"}
    if not_passed is None:
        del now[HIDDEN]  # never reported: the run ended, or the test was not collected
    else:
        now[HIDDEN] = not_passed
    trial = stats(**now, **{"tests/test_new.py::test_mine": "passed"})

    counts, _ = judge(baseline, trial)

    assert trial.judged == (4, 5) and trial.pass_rate == pytest.approx(0.8)
    assert counts["added"] == 1 and counts["removed" if not_passed is None else "still_failing"] == 1


def test_a_test_skipped_at_the_base_is_not_judged() -> None:
    baseline = _from_runs("k", "abc", [stats(**BASE)], ["holdout"])
    trial = stats(**{node: "passed" for node in BASE if node != SKIP})

    judge(baseline, trial)

    assert SKIP not in trial.verdicts and trial.pass_rate == 1.0


@pytest.mark.parametrize(
    "text",
    [
        '[tool.pytest.ini_options]\naddopts = "-x"\n',
        '[tool]\npytest.ini_options.addopts = "-x"\n',
        'tool = {pytest = {ini_options = {addopts = "-x"}}}\n',
        '[ "tool" . "pytest" . "ini_options" ]\naddopts = "-x"\n',
        "[tool.pytest]\naddopts = ['-x']\n",
    ],
)
def test_pytest_configuration_in_pyproject_is_found_however_it_is_written(text: str) -> None:
    assert pinning.holds_pytest_config("pyproject.toml", text)
    assert not pinning.holds_pytest_config("pyproject.toml", '[project]\nname = "x"\n[tool.ruff]\nline-length = 1\n')


def test_the_base_configuration_is_the_file_pytest_would_read(project: Project) -> None:
    project.write(
        {
            "pyproject.toml": '[project]\nname = "x"\n',
            "tox.ini": "[tox]\nenvlist = py\n",
            "setup.cfg": "[tool:pytest]\naddopts = -x\n",
            "t.py": "",
        }
    )
    base = project.commit()
    git = gitops.sealed(project.path)

    assert pinning.base_config(git, base) == ("setup.cfg", "[tool:pytest]\naddopts = -x\n")
    project.git("rm", "-q", "setup.cfg")
    assert pinning.base_config(git, project.commit("no setup.cfg")) == ("pyproject.toml", '[project]\nname = "x"\n')
    project.git("rm", "-q", "pyproject.toml")
    assert pinning.base_config(git, project.commit("no configuration")) is None


def test_a_pyproject_change_keeps_the_agents_edits_and_the_bases_pytest_configuration(project: Project) -> None:
    project.write({"pyproject.toml": '[project]\nname = "x"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n'})
    base = project.commit()
    git = gitops.sealed(project.path)
    project.write({"pyproject.toml": '[project]\nname = "x"\ndependencies = ["attrs"]\n\n[tool]\npytest.x = 1\n'})
    hostile = project.commit("hostile")

    sealed = protect.sealed_tree(git, base, hostile, protect.Policy())

    assert sealed.tampering == ["pyproject.toml"]
    text = git.run("cat-file", "blob", f"{sealed.tree}:pyproject.toml")
    assert pinning.pytest_table(text) == {"ini_options": {"addopts": "-q"}}
    dependency = '[project]\nname = "x"\ndependencies = ["attrs"]\n'
    project.write({"pyproject.toml": dependency + '\n[tool.pytest.ini_options]\naddopts = "-q"\n'})
    honest = protect.sealed_tree(git, base, project.commit("a dependency"), protect.Policy())
    assert honest.tampering == []


@pytest.mark.parametrize("folder", ["evil-1.0.dist-info", "src/Evil.EGG-INFO"])
def test_package_metadata_is_protected(folder: str) -> None:
    assert protect.Policy().reason(f"{folder}/entry_points.txt", at_base=False) is not None


def test_agent_text_is_literal_in_markdown() -> None:
    assert markdown_text("<img src=x onerror=alert(1)>.py") == "&lt;img src=x onerror=alert(1)&gt;.py"
    assert markdown_text("[a](javascript:x) *b* |\nc") == "\\[a\\](javascript:x) \\*b\\* \\| c"
    assert markdown_code("tests/t.py::test[`x`]") == "``tests/t.py::test[`x`]``"
    assert markdown_code("`a") == "`` `a ``"


def test_the_pinned_run_loads_no_conftest_above_the_checkout_and_writes_through_no_link(tmp_path: Path) -> None:
    """A set-up command runs before the suite and can leave links in ``out/`` for the reporter's write to follow."""
    checkout, out, yours = tmp_path / "checkout", tmp_path / "out", tmp_path / "yours.py"
    checkout.mkdir()
    (out / pinning.REPORTER_FOLDER).mkdir(parents=True)
    yours.write_text("# the user's file\n")
    os.symlink(yours, out / pinning.REPORTER_FOLDER / f"{pinning.REPORTER_MODULE}.py")
    args = pinning.arguments(pinning.Pinned(None), checkout, out)
    assert f"--confcutdir={checkout}" in args
    assert yours.read_text() == "# the user's file\n"
    reporter = out / pinning.REPORTER_FOLDER / f"{pinning.REPORTER_MODULE}.py"
    assert not reporter.is_symlink() and "def " in reporter.read_text()
